#!/usr/bin/env bash
# Tokens/s of a 3-host mesh without loss and with LOSS % of the packets on every link between the
# hosts dropped at random (not part of the tests). The hosts are network namespaces on one bridge
# (as tests/support/hosts.hpp makes them), one node of stories260K on each: b and c of equal
# weight for the planner, which splits the layers between them, and a, the entry, holding none,
# so that every token crosses every link (a -> b -> c -> a) and a stage suspected under loss can
# be planned around, as in a real mesh. The client runs on a's host. Loss is an nftables rule on each host's way out (eth0); rounds
# alternate between loss-free and lossy on the same mesh, so load from elsewhere falls on both.
# Figures are the medians of the rounds with their range; each completion's text is compared with
# the first loss-free one. Needs root, `ip` and `nft` (Debian packages iproute2 and nftables).
# A lost packet costs TCP's retransmission timeout (200 ms at least on Linux) unless a later
# packet on the connection reveals the loss sooner, so the ratio depends on how long a token
# takes: stories260K's take well under a millisecond here, and the figure is mostly TCP's;
# MODEL= a larger model (a GGUF carrying its tokenizer, e.g. from `troupe synth`) gives the
# figure for tokens that compute takes longer than the network.
#
#   bench/loss.sh [BUILD_DIR]
#     LOSS=percent (default 20); ROUNDS=n (default 3); TOKENS=n positions per completion
#     (default 200); TIMEOUT=seconds one completion may take (default 600); MODEL=file
#     (default stories260K)
set -euo pipefail
BUILD=${1:-build}
LOSS=${LOSS:-20}
ROUNDS=${ROUNDS:-3}
TOKENS=${TOKENS:-200}
TIMEOUT=${TIMEOUT:-600}
T=$(realpath "$BUILD/troupe")
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
S260=$SHARED/models/stories260K/stories260K.bin
TOK260=$SHARED/models/stories260K/tok512.bin
MODEL=${MODEL:-$S260}
MODEL_ARGS=(--model "$MODEL")
[ "$MODEL" = "$S260" ] && MODEL_ARGS+=(--tokenizer "$TOK260")
PATH=$PATH:/usr/sbin:/sbin
PREFIX=troupe-loss-$$-
LOGS=$(mktemp -d /tmp/troupe-loss-XXXXXX)
PIDS=()

unavailable() {
  echo "bench/loss.sh: cannot measure here: $1; no figures" >&2
  rm -rf "$LOGS"
  exit 1
}
[ "$(id -u)" = 0 ] || unavailable "needs root (network namespaces and nftables)"
command -v ip >/dev/null || unavailable "no \`ip\` tool (Debian package iproute2)"
command -v nft >/dev/null || unavailable "no \`nft\` tool (Debian package nftables)"
[ -x "$T" ] || unavailable "no troupe executable at $T (build it first)"

cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for ns in lan h0 h1 h2; do ip netns delete "$PREFIX$ns" 2>/dev/null || true; done
  rm -rf "$LOGS"
}
trap cleanup EXIT

in_host() { local h=$1; shift; ip netns exec "$PREFIX$h" "$@"; }

ip netns add "${PREFIX}lan" 2>"$LOGS/ip.err" || unavailable "network namespaces refused: $(cat "$LOGS/ip.err")"
ip -n "${PREFIX}lan" link add br0 type bridge
ip -n "${PREFIX}lan" link set br0 up
for i in 0 1 2; do
  ip netns add "${PREFIX}h$i"
  ip -n "${PREFIX}lan" link add "h$i" type veth peer name eth0 netns "${PREFIX}h$i"
  ip -n "${PREFIX}lan" link set "h$i" master br0 up
  ip -n "${PREFIX}h$i" addr add "10.78.0.$((i + 1))/24" dev eth0
  ip -n "${PREFIX}h$i" link set eth0 up
  ip -n "${PREFIX}h$i" link set lo up
  in_host "h$i" nft -f - <<<"add table inet troupe_loss
add chain inet troupe_loss out { type filter hook output priority 0; }" 2>"$LOGS/nft.err" ||
    unavailable "nftables does not work in a namespace: $(cat "$LOGS/nft.err")"
done

# loss PERCENT: every host drops PERCENT % of what it sends to the others (0: nothing).
loss() {
  for i in 0 1 2; do
    in_host "h$i" nft flush chain inet troupe_loss out
    [ "$1" = 0 ] || in_host "h$i" nft add rule inet troupe_loss out oifname eth0 numgen random mod 100 \< "$1" counter drop
  done
}

"$T" keygen --out "$LOGS/mesh.key" >/dev/null 2>&1
SECURITY=(--mesh-key "$LOGS/mesh.key")
weights=("--mem-budget 1K" "--throughput 10" "--throughput 10")
names=(a b c)
for i in 0 1 2; do
  # shellcheck disable=SC2206
  args=(node --listen "10.78.0.$((i + 1)):7000" "${MODEL_ARGS[@]}" --name "${names[$i]}"
        --threads 1 ${weights[$i]} "${SECURITY[@]}")
  [ "$i" = 0 ] || args+=(--join 10.78.0.1:7000)
  in_host "h$i" "$T" "${args[@]}" >"$LOGS/${names[$i]}.log" 2>&1 &
  PIDS+=($!)
done
ENTRY=10.78.0.1:7000
# serving_on_two: the entry says the mesh serves with b and c both holding layers.
serving_on_two() {
  in_host h0 "$T" status --peer "$ENTRY" --json "${SECURITY[@]}" 2>/dev/null |
    python3 -c 'import json, sys; s = json.load(sys.stdin); sys.exit(not (s["serving"] and len(s["plan"]["stages"]) == 2))'
}
# wait_two: until the mesh serves on two stages again (60 s at most).
wait_two() {
  for _ in $(seq 600); do
    serving_on_two && return 0
    sleep 0.1
  done
  echo "bench/loss.sh: the mesh did not serve on two stages within 60 s; its logs:" >&2
  tail -n 20 "$LOGS"/*.log >&2
  exit 1
}
wait_two

# tok_per_s NAME: one greedy completion through the entry; prints its tok/s, keeps its text.
tok_per_s() {
  in_host h0 timeout "$TIMEOUT" "$T" generate --peer "$ENTRY" "${SECURITY[@]}" -t 0 -n "$TOKENS" \
    -i "Once upon a time" >"$LOGS/$1.out" 2>"$LOGS/$1.err" || {
    echo "bench/loss.sh: completion $1 failed: $(tail -n 3 "$LOGS/$1.err")" >&2
    exit 1
  }
  grep -o 'generated [0-9]* tok, [0-9.]* tok/s' "$LOGS/$1.err" | awk '{ print $4 }'
}

spread() {  # X...: "median (min–max)"
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    if (NR == 1) print v[1]; else printf "%s (%s–%s)\n", m, v[1], v[NR] }'
}
median() { spread "$@" | cut -d' ' -f1; }

clean=()
lossy=()
different=0
for round in $(seq "$ROUNDS"); do
  loss 0
  wait_two
  rate=$(tok_per_s "clean$round")
  clean+=("$rate")
  loss "$LOSS"
  rate=$(tok_per_s "lossy$round")
  lossy+=("$rate")
  for f in "clean$round" "lossy$round"; do cmp -s "$LOGS/clean1.out" "$LOGS/$f.out" || different=$((different + 1))
  done
done
dropped=0
for i in 0 1 2; do
  dropped=$((dropped + $(in_host "h$i" nft list chain inet troupe_loss out | grep -o 'packets [0-9]*' | awk '{ s += $2 } END { print s + 0 }')))
done
loss 0
ratio=$(awk -v a="$(median "${lossy[@]}")" -v b="$(median "${clean[@]}")" 'BEGIN { printf "%.1f", 100 * a / b }')
echo "3 hosts (network namespaces), $(basename "$MODEL"): entry a, stages b and c (planned), greedy, $TOKENS positions, $ROUNDS rounds"
echo "loss-free:            $(spread "${clean[@]}") tok/s"
echo "$LOSS% loss, every link: $(spread "${lossy[@]}") tok/s ($dropped packets dropped in the last lossy round)"
echo "ratio:                $ratio% of the loss-free tok/s (medians)"
echo "text identical to the first loss-free completion: $((2 * ROUNDS - different)) of $((2 * ROUNDS))"
[ "$different" = 0 ]
