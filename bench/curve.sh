#!/usr/bin/env bash
# What CURVE (docs/security.md) costs, secure against --insecure on the same run (not part of the
# tests). Every node runs on this machine; the secure and the insecure mesh are up at the same
# time and rounds alternate between them (and which goes first), so that load from elsewhere
# falls on both. Figures are medians of the rounds with their range.
#
#   bench/curve.sh [BUILD_DIR [SECTION...]]
#     SECTION: rtt hop generate (default: all, in that order)
#     rtt:      troupe-curve-rtt, one round trip on the transport's sockets, frames of 256 B,
#               8 KiB (TinyLlama's hidden state in f32) and 64 KiB, alternating frame by frame
#     hop:      stories260K, ms/token through an entry node that holds no stage minus direct
#               (two hops per token), secure and insecure
#     generate: 2 nodes, TinyLlama-1.1B-shaped Q4_0 split 0:11 + 11:22, one thread each, greedy
#     TL=path reuses the model (default /tmp/tl.gguf, made by troupe synth); ROUNDS=n (default 9);
#     TOKENS=n positions per completion (default 64); PORT=first port (default 7500)
# The last column is the median (and range) of the differences within a round: load that moves
# between rounds falls on both sides of each difference.
set -euo pipefail
BUILD=${1:-build}
shift $(($# > 0 ? 1 : 0))
SECTIONS=${*:-rtt hop generate}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
ROUNDS=${ROUNDS:-9}
TOKENS=${TOKENS:-64}
T=$BUILD/troupe
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
S260=$SHARED/models/stories260K/stories260K.bin
TOK260=$SHARED/models/stories260K/tok512.bin
TL=${TL:-/tmp/tl.gguf}
NEXT=${PORT:-7500}
LOGS=$(mktemp -d /tmp/troupe-curve-XXXXXX)
PIDS=()
"$T" keygen --out "$LOGS/mesh.key" 2>/dev/null

stop_nodes() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap stop_nodes EXIT

# security MODE: the flags of a secure or an insecure node or client.
security() { if [ "$1" = secure ]; then echo "--mesh-key $LOGS/mesh.key"; else echo "--insecure"; fi; }

# node MODE NAME MODEL LAYERS|- [JOIN]: starts a node on the next port; its address in ADDR.
node() {
  local mode=$1 name=$2 model=$3 layers=$4 join=${5:-}
  local addr=127.0.0.1:$NEXT
  NEXT=$((NEXT + 1))
  local args=(node --listen "$addr" --model "$model" --name "$name" --threads 1 --throughput 10)
  [ "$model" = "$S260" ] && args+=(--tokenizer "$TOK260")
  [ "$layers" != - ] && args+=(--layers "$layers") || args+=(--mem-budget 1K)
  [ -n "$join" ] && args+=(--join "$join")
  # shellcheck disable=SC2046
  "$T" "${args[@]}" $(security "$mode") >"$LOGS/$mode-$name.log" 2>&1 &
  PIDS+=($!)
  ADDR=$addr
}

wait_serving() {  # MODE PEER
  for _ in $(seq 600); do
    # shellcheck disable=SC2046
    "$T" status --peer "$2" --json $(security "$1") 2>/dev/null | grep -q '"serving": true' && return 0
    sleep 0.1
  done
  echo "mesh at $2 never served; logs in $LOGS" >&2
  exit 1
}

# ms_per_token MODE PEER N PROMPT: decode ms/token of one greedy completion.
ms_per_token() {
  # shellcheck disable=SC2046
  "$T" generate --peer "$2" -t 0 -n "$3" -i "$4" $(security "$1") 2>&1 >/dev/null |
    grep -o 'generated [0-9]* tok, [0-9.]* tok/s' | awk '{ printf "%.4f\n", 1000 / $4 }'
}

spread() {  # X...: "median (min–max)"
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    if (NR == 1) print v[1]; else printf "%s (%s–%s)\n", m, v[1], v[NR] }'
}

echo "| what | --insecure | secure (CURVE) | difference |"
echo "|---|---|---|---|"

if want rtt; then
  "$BUILD/bench/troupe-curve-rtt" --port "$NEXT" | tail -n +3 |
    awk -F'|' '{ printf "| one round trip (2 frames), %s frames, raw sockets, µs |%s|%s|%s|\n", $2, $3, $4, $5 }' |
    sed 's/  */ /g'
  NEXT=$((NEXT + 2))
fi

# rounds A B: the order of the two meshes in round $1 (alternating, so that neither always goes
# first after the other has warmed the caches).
order() { if (($1 % 2)); then echo insecure secure; else echo secure insecure; fi; }

if want hop; then
  declare -A stage entry
  for mode in insecure secure; do
    node "$mode" stage "$S260" 0:5
    stage[$mode]=$ADDR
    node "$mode" entry "$S260" - "$ADDR"
    entry[$mode]=$ADDR
  done
  for mode in insecure secure; do wait_serving "$mode" "${entry[$mode]}"; done
  declare -A hops
  diffs=()
  for round in $(seq "$ROUNDS"); do
    declare -A hop=()
    for mode in $(order "$round"); do
      d=$(ms_per_token "$mode" "${stage[$mode]}" 256 "Once upon a time")
      v=$(ms_per_token "$mode" "${entry[$mode]}" 256 "Once upon a time")
      hop[$mode]=$(awk -v a="$d" -v b="$v" 'BEGIN { printf "%.0f", (b - a) * 1000 / 2 }')
      hops[$mode]+=" ${hop[$mode]}"
    done
    diffs+=($((hop[secure] - hop[insecure])))
  done
  stop_nodes
  # shellcheck disable=SC2086
  echo "| one hop through troupe nodes, stories260K (256 B activations), µs per token | $(spread ${hops[insecure]}) | $(spread ${hops[secure]}) | $(spread "${diffs[@]}") µs (per round) |"
fi

# The nodes' CPU time (user + system, clock ticks) of MODE so far.
declare -A MODE_PIDS
cpu_ticks() {
  local total=0 p
  for p in ${MODE_PIDS[$1]}; do total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
  echo "$total"
}

# Tokens/s and, from the nodes' CPU time over the completions, CPU ms per generated token: the
# wall-clock rate moves with the machine's load, the CPU time each token takes much less.
if want generate; then
  [ -f "$TL" ] || "$T" synth --shape tinyllama-1.1b --type q4_0 --out "$TL" >/dev/null
  declare -A first
  for mode in insecure secure; do
    node "$mode" a "$TL" 0:11
    first[$mode]=$ADDR
    MODE_PIDS[$mode]="${PIDS[-1]}"
    node "$mode" b "$TL" 11:22 "$ADDR"
    MODE_PIDS[$mode]+=" ${PIDS[-1]}"
  done
  for mode in insecure secure; do wait_serving "$mode" "${first[$mode]}"; done
  declare -A rates ticks tokens
  diffs=()
  for round in $(seq "$ROUNDS"); do
    declare -A rate=()
    for mode in $(order "$round"); do
      before=$(cpu_ticks "$mode")
      # shellcheck disable=SC2046
      "$T" generate --peer "${first[$mode]}" -t 0 -n "$TOKENS" -i "Once upon a time" $(security "$mode") \
        2>"$LOGS/gen.err" >/dev/null || { echo "$mode completion failed: $(cat "$LOGS/gen.err")" >&2; exit 1; }
      ticks[$mode]=$((${ticks[$mode]:-0} + $(cpu_ticks "$mode") - before))
      read -r n r < <(grep -o 'generated [0-9]* tok, [0-9.]* tok/s' "$LOGS/gen.err" | awk '{ print $2, $4 }')
      tokens[$mode]=$((${tokens[$mode]:-0} + n))
      rate[$mode]=$r
      rates[$mode]+=" $r"
    done
    diffs+=("$(awk -v i="${rate[insecure]}" -v s="${rate[secure]}" 'BEGIN { printf "%.1f", 100 * (s - i) / i }')")
  done
  stop_nodes
  # shellcheck disable=SC2086
  echo "| 2 nodes, TinyLlama-1.1B Q4_0 (0:11 + 11:22, 1 thread each), greedy, tok/s | $(spread ${rates[insecure]}) | $(spread ${rates[secure]}) | $(spread "${diffs[@]}") % (per round) |"
  cpu() { awk -v t="${ticks[$1]}" -v n="${tokens[$1]}" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", 1000 * t / hz / n }'; }
  i=$(cpu insecure) s=$(cpu secure)
  echo "| the same, both nodes' CPU ms per generated token (${tokens[secure]} tokens each) | $i | $s | $(awk -v i="$i" -v s="$s" 'BEGIN { printf "%+.1f%%", 100 * (s - i) / i }') |"
fi
echo "(logs in $LOGS)"
