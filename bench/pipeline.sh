#!/usr/bin/env bash
# The pipeline's figures (not part of the tests): per-token overhead of one hop on loopback, bytes
# on the wire per token, tokens/s of 1, 2 and 3 stages on a synthetic stories110M-shaped model, and
# 8 concurrent sessions on 2 stages against 1. Every node runs on this machine, so stages share
# its cores: the figures show the pipeline's overhead, not the speed of a mesh of devices. The
# machine may be shared: timed figures are repeated and given as median (min–max).
#
#   bench/pipeline.sh [BUILD_DIR [SECTION...]]
#     SECTION: hop bytes stages concurrent f16 memory (default: all, in that order)
#     MODEL110=path reuses a synthetic model (default /tmp/s110.gguf); REPEAT=n rounds of the
#     concurrent figures (default 3)
set -euo pipefail
BUILD=${1:-build}
shift $(($# > 0 ? 1 : 0))
SECTIONS=${*:-hop bytes stages concurrent f16 memory}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
REPEAT=${REPEAT:-3}
T=$BUILD/troupe
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
S260=$SHARED/models/stories260K/stories260K.bin
TOK260=$SHARED/models/stories260K/tok512.bin
MODEL110=${MODEL110:-/tmp/s110.gguf}
PORT=${PORT:-7400}
LOGS=$(mktemp -d /tmp/troupe-bench-XXXXXX)
PIDS=()

[ -f "$MODEL110" ] || "$T" synth --shape stories110m --out "$MODEL110" >/dev/null

stop_nodes() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap stop_nodes EXIT

# node NAME MODEL LAYERS|- THREADS [JOIN|"" [MORE FLAGS...]]: starts a node on the next port;
# its address in ADDR.
NEXT=$PORT
node() {
  local name=$1 model=$2 layers=$3 threads=$4 join=${5:-}
  shift 5 2>/dev/null || shift $#
  local addr=127.0.0.1:$NEXT
  NEXT=$((NEXT + 1))
  local args=(node --listen "$addr" --model "$model" --name "$name" --threads "$threads")
  [ "$model" = "$S260" ] && args+=(--tokenizer "$TOK260")
  [ "$layers" != - ] && args+=(--layers "$layers")
  [ -n "$join" ] && args+=(--join "$join")
  "$T" "${args[@]}" "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS+=($!)
  ADDR=$addr
}

wait_serving() {
  for _ in $(seq 200); do
    "$T" status --peer "$1" --json 2>/dev/null | grep -q '"serving": true' && return 0
    sleep 0.05
  done
  echo "mesh at $1 never served; logs in $LOGS" >&2
  exit 1
}

# ms_per_token PEER N PROMPT: decode ms/token of one greedy completion (from the client's tok/s,
# which has more digits than its ms/token).
ms_per_token() {
  "$T" generate --peer "$1" -t 0 -n "$2" -i "$3" 2>&1 >/dev/null |
    grep -o 'generated [0-9]* tok, [0-9.]* tok/s' | awk '{ printf "%.4f\n", 1000 / $4 }'
}

# spread X...: "median (min–max)" of numbers, with the precision they came with.
spread() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    if (NR == 1) print v[1]; else printf "%s (%s–%s)\n", m, v[1], v[NR] }'
}

# sent_bytes: bytes the stopped nodes' transports sent, summed over the logs.
sent_bytes() {
  cat "$LOGS"/*.log | grep -o 'sent [0-9]* frames ([0-9]* bytes)' | awk '{ gsub("\\(", "", $4); s += $4 } END { print s }'
}

echo "| what | figure |"
echo "|---|---|"

# One hop: the same stage entered directly (no network per token) and through a node that holds
# no stage (two hops per token: entry -> stage -> entry); rounds alternate. A hop is half the
# difference: of the best round of each, and per round (its spread shows the machine's noise).
# Two small models, so that compute time does not drown the hop: stories260K (dim 64, 256-byte
# activations) and a one-layer model of stories110M's width (dim 768, 3 KiB).
if want hop; then
  WIDE=${WIDE:-/tmp/troupe-bench-wide.gguf}
  [ -f "$WIDE" ] || "$T" synth --dim 768 --hidden 2048 --layers 1 --heads 12 --kv-heads 12 \
    --vocab 512 --seq-len 512 --out "$WIDE" >/dev/null
  for model in "$S260" "$WIDE"; do
    label=$([ "$model" = "$S260" ] && echo "stories260K (dim 64)" || echo "1 layer of dim 768")
    layers=$([ "$model" = "$S260" ] && echo 0:5 || echo 0:1)
    node stage "$model" "$layers" 1
    stage=$ADDR
    node entry "$model" - 1 "$stage"
    entry=$ADDR
    wait_serving "$entry"
    direct=()
    via=()
    hops=()
    for _ in 1 2 3 4 5; do
      d=$(ms_per_token "$stage" 256 "Once upon a time")
      v=$(ms_per_token "$entry" 256 "Once upon a time")
      direct+=("$d")
      via+=("$v")
      hops+=("$(awk -v a="$d" -v b="$v" 'BEGIN { printf "%.0f", (b - a) * 1000 / 2 }')")
    done
    stop_nodes
    d=$(printf '%s\n' "${direct[@]}" | sort -g | head -1)
    v=$(printf '%s\n' "${via[@]}" | sort -g | head -1)
    hop=$(awk -v a="$d" -v b="$v" 'BEGIN { printf "%.0f", (b - a) * 1000 / 2 }')
    echo "| one hop on loopback, $label | $hop µs per token from the best rounds ($d ms/token direct, $v ms/token through an entry node); per round $(spread "${hops[@]}") µs |"
  done
fi

# Bytes on the wire per token: a 2-stage mesh, one completion of N tokens, every frame counted
# (heartbeats included).
if want bytes; then
  rm -f "$LOGS"/*.log
  node a "$MODEL110" 0:6 2
  a=$ADDR
  node b "$MODEL110" 6:12 2 "$a"
  wait_serving "$a"
  sleep 1.5
  "$T" generate --peer "$a" -t 0 -n 201 -i "Once" >/dev/null 2>"$LOGS/gen.err"
  tokens=$(grep -o 'generated [0-9]*' "$LOGS/gen.err" | cut -d' ' -f2)
  stop_nodes
  bytes=$(sent_bytes)
  echo "| bytes on the wire per token, 2 stages, dim 768, f32 | $(awk -v b="$bytes" -v t="$tokens" 'BEGIN { printf "%.0f", b / t }') bytes (activation frame $((768 * 4)) B of floats + envelope, sampled and step frames, heartbeats) |"
fi

# Tokens/s of 1, 2 and 3 stages, one session, entered at the first stage, with 1 and 2 threads a
# node (one session keeps one stage busy at a time; with 2 threads, 2 or 3 nodes put 4 or 6
# compute threads on this machine's 2 cores).
if want stages; then
  for threads in 1 2; do for layout in "0:12" "0:6 6:12" "0:4 4:8 8:12"; do
    first=
    n=0
    for l in $layout; do
      node "s$n" "$MODEL110" "$l" "$threads" "$first"
      [ -z "$first" ] && first=$ADDR
      n=$((n + 1))
    done
    wait_serving "$first"
    rates=()
    for _ in $(seq "$REPEAT"); do
      rates+=("$(awk -v m="$(ms_per_token "$first" 128 "Once upon a time")" 'BEGIN { printf "%.1f", 1000 / m }')")
    done
    stop_nodes
    echo "| stories110M shape, $n stage(s) ($layout), one session, $threads thread(s) a node | $(spread "${rates[@]}") tok/s |"
  done; done
fi

# 8 concurrent sessions, total tokens/s, entering at the first stage: one node holding every layer,
# and two nodes holding half each, one thread a node, so that one stage can use one core and two
# stages both. The last stage also holds the classifier (32000 x 768, as much as 3.5 layers), so
# the halves are uneven; 0:8 + 8:12 balances the bytes read per token (~226 / ~211 MB). One node
# with 2 threads, for comparison. Configurations alternate within a round so that load from
# others falls on all of them. Each round also gives each node's CPU time over the wall time
# (100% = one core busy throughout; a pipelined 2-stage mesh keeps both stages near 100%) and,
# after "of", the whole machine's (200% = both cores): what the nodes do not account for is the
# clients and other people's work, which takes cores from the stages.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
percent() {
  awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f%%", 100 * t / hz / (b - a) }'
}
concurrent() {
  local peer=$1 start end total=0 clients=() before=() machine i
  for p in "${PIDS[@]}"; do before+=("$(cpu_ticks "$p")"); done
  machine=$(machine_ticks)
  start=$(date +%s.%N)
  for i in $(seq 8); do
    "$T" generate --peer "$peer" -t 1 -s "$i" -n 128 -i "Once upon a time" >/dev/null 2>"$LOGS/c$i.err" &
    clients+=($!)
  done
  for i in $(seq 8); do
    wait "${clients[$((i - 1))]}" || { echo "client $i failed: $(cat "$LOGS/c$i.err")" >&2; exit 1; }
  done
  end=$(date +%s.%N)
  machine=$(($(machine_ticks) - machine))
  for i in $(seq 8); do
    total=$((total + $(grep -o 'generated [0-9]*' "$LOGS/c$i.err" | cut -d' ' -f2)))
  done
  RATE=$(awk -v t="$total" -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", t / (b - a) }')
  CPU=
  for i in "${!PIDS[@]}"; do
    CPU+="${CPU:+ + }$(percent $(($(cpu_ticks "${PIDS[$i]}") - before[i])) "$start" "$end")"
  done
  CPU+=" of $(percent "$machine" "$start" "$end")"
}
if want concurrent; then
  configs=("0:12|1|1 stage, 1 thread" "0:6 6:12|1|2 stages 0:6 + 6:12, 1 thread each"
           "0:8 8:12|1|2 stages 0:8 + 8:12, 1 thread each" "0:12|2|1 stage, 2 threads")
  declare -A conc_rates conc_cpus
  for _ in $(seq "$REPEAT"); do
    for c in "${configs[@]}"; do
      IFS='|' read -r layout threads label <<<"$c"
      first=
      n=0
      for l in $layout; do
        node "c$n" "$MODEL110" "$l" "$threads" "$first"
        [ -z "$first" ] && first=$ADDR
        n=$((n + 1))
      done
      wait_serving "$first"
      concurrent "$first"
      stop_nodes
      conc_rates[$label]+=" $RATE"
      conc_cpus[$label]+="${conc_cpus[$label]:+, }$RATE at $CPU"
    done
  done
  for c in "${configs[@]}"; do
    IFS='|' read -r layout threads label <<<"$c"
    # shellcheck disable=SC2086
    echo "| 8 concurrent sessions, stories110M shape, $label | $(spread ${conc_rates[$label]}) tok/s total (per round: tok/s at node CPU of machine CPU: ${conc_cpus[$label]}) |"
  done
fi

# Accuracy of f16 activations: the reference cases through 5 stages of stories260K (4 hops that
# round the hidden state to f16), compared with llama2.c's output byte for byte.
if want f16 && command -v python3 >/dev/null; then
  first=
  for l in 0:1 1:2 2:3 3:4 4:5; do
    node "h$l" "$S260" "$l" 1 "$first" --activations f16
    [ -z "$first" ] && first=$ADDR
  done
  wait_serving "$first"
  same=$(python3 - "$T" "$first" "$SHARED/reference/stories260K-cases.json" <<'PY'
import json, subprocess, sys
troupe, peer, path = sys.argv[1:]
cases = json.load(open(path))
same = 0
for c in cases:
    args = [troupe, "generate", "--peer", peer, "-t", str(c["temperature"]), "-p", str(c["topp"]),
            "-s", str(c["seed"]), "-n", str(c["steps"]), "-i", c["prompt"]]
    same += subprocess.run(args, capture_output=True, text=True).stdout == c["expected_stdout"]
print(f"{same} of {len(cases)}")
PY
)
  stop_nodes
  echo "| f16 activations, stories260K in 5 stages: reference cases byte-identical to llama2.c | $same |"
fi

# Memory: peak RSS of each node of a 3-stage mesh (and a node holding no stage) after one
# completion, against the whole model on one node. Weights are read into private memory, so a
# node holding k of n layers should hold about k/n of the layers' bytes (plus the embedding on
# the first stage and the classifier on the last), its KV caches and a fixed overhead.
if want memory; then
  peak_rss() { awk '/VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$1/status"; }
  node whole "$MODEL110" 0:12 2
  wait_serving "$ADDR"
  "$T" generate --peer "$ADDR" -t 0 -n 128 -i "Once upon a time" >/dev/null 2>&1
  echo "| peak RSS, stories110M shape (f32, $(($(stat -c %s "$MODEL110") / 1048576)) MiB file), all 12 layers on one node | $(peak_rss "${PIDS[0]}") |"
  stop_nodes
  first=
  for l in 0:4 4:8 8:12 -; do
    node "m$l" "$MODEL110" "$l" 2 "$first"
    [ -z "$first" ] && first=$ADDR
  done
  wait_serving "$ADDR"
  "$T" generate --peer "$ADDR" -t 0 -n 128 -i "Once upon a time" >/dev/null 2>&1
  rss=""
  i=0
  for l in 0:4 4:8 8:12 none; do
    rss+="${rss:+, }$l: $(peak_rss "${PIDS[$i]}")"
    i=$((i + 1))
  done
  stop_nodes
  echo "| peak RSS, same model, 3 stages + an entry node | $rss |"
fi
rm -rf "$LOGS"
