#!/usr/bin/env bash
# The pipeline's figures (not part of the tests): per-token overhead of one hop on loopback, bytes
# on the wire per token, tokens/s of 1, 2 and 3 stages on a synthetic stories110M-shaped model, and
# 8 concurrent sessions on 2 stages against 1. Every node runs on this machine, so stages share
# its cores: the figures show the pipeline's overhead, not the speed of a mesh of devices.
#
#   bench/pipeline.sh [BUILD_DIR]      (MODEL110=path reuses a synthetic model; default /tmp/s110.gguf)
set -euo pipefail
BUILD=${1:-build}
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

# ms_per_token PEER N PROMPT [ROUNDS]: decode ms/token of one greedy completion (the best of
# ROUNDS, 3 by default: the machine may be shared).
ms_per_token() {
  local best=
  for _ in $(seq "${4:-3}"); do
    local ms
    ms=$("$T" generate --peer "$1" -t 0 -n "$2" -i "$3" 2>&1 >/dev/null | grep -o '[0-9.]* ms/token' | cut -d' ' -f1)
    best=$(awk -v a="$ms" -v b="$best" 'BEGIN { print (b == "" || a < b) ? a : b }')
  done
  echo "$best"
}

# sent_bytes: bytes the stopped nodes' transports sent, summed over the logs.
sent_bytes() {
  cat "$LOGS"/*.log | grep -o 'sent [0-9]* frames ([0-9]* bytes)' | awk '{ gsub("\\(", "", $4); s += $4 } END { print s }'
}

echo "| what | figure |"
echo "|---|---|"

# One hop: the same stage entered directly (no network per token) and through a node that holds
# no stage (two hops per token: entry -> stage -> entry); rounds alternate, the best of each
# counts. Two small models, so that compute time does not drown the hop: stories260K (dim 64,
# 256-byte activations) and a one-layer model of stories110M's width (dim 768, 3 KiB).
WIDE=${WIDE:-/tmp/troupe-bench-wide.gguf}
[ -f "$WIDE" ] || "$T" synth --dim 768 --hidden 2048 --layers 1 --heads 12 --kv-heads 12 --vocab 512 \
  --seq-len 512 --out "$WIDE" >/dev/null
for model in "$S260" "$WIDE"; do
  label=$([ "$model" = "$S260" ] && echo "stories260K (dim 64)" || echo "1 layer of dim 768")
  layers=$([ "$model" = "$S260" ] && echo 0:5 || echo 0:1)
  node stage "$model" "$layers" 1
  stage=$ADDR
  node entry "$model" - 1 "$stage"
  entry=$ADDR
  wait_serving "$entry"
  direct=
  via=
  for _ in 1 2 3 4 5; do
    d=$(ms_per_token "$stage" 256 "Once upon a time" 1)
    v=$(ms_per_token "$entry" 256 "Once upon a time" 1)
    direct=$(awk -v a="$d" -v b="$direct" 'BEGIN { print (b == "" || a < b) ? a : b }')
    via=$(awk -v a="$v" -v b="$via" 'BEGIN { print (b == "" || a < b) ? a : b }')
  done
  stop_nodes
  hop=$(awk -v a="$direct" -v b="$via" 'BEGIN { printf "%.0f", (b - a) * 1000 / 2 }')
  echo "| one hop on loopback, $label | $hop µs per token ($direct ms/token direct, $via ms/token through an entry node) |"
done

# Bytes on the wire per token: a 2-stage mesh, one completion of N tokens, every frame counted
# (heartbeats included).
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

# Tokens/s of 1, 2 and 3 stages, one session, entered at the first stage.
for layout in "0:12" "0:6 6:12" "0:4 4:8 8:12"; do
  first=
  n=0
  for l in $layout; do
    node "s$n" "$MODEL110" "$l" 2 "$first"
    [ -z "$first" ] && first=$ADDR
    n=$((n + 1))
  done
  wait_serving "$first"
  ms=$(ms_per_token "$first" 128 "Once upon a time")
  stop_nodes
  echo "| stories110M shape, $n stage(s) ($layout), one session | $(awk -v m="$ms" 'BEGIN { printf "%.1f", 1000 / m }') tok/s ($ms ms/token) |"
done

# 8 concurrent sessions: total tokens/s on 1 stage (2 threads) and on 2 stages (1 thread each).
concurrent() {
  local peer=$1
  local start end total=0
  start=$(date +%s.%N)
  local clients=()
  for i in $(seq 8); do
    "$T" generate --peer "$peer" -t 1 -s "$i" -n 128 -i "Once upon a time" >/dev/null 2>"$LOGS/c$i.err" &
    clients+=($!)
  done
  wait "${clients[@]}"
  end=$(date +%s.%N)
  for i in $(seq 8); do
    total=$((total + $(grep -o 'generated [0-9]*' "$LOGS/c$i.err" | cut -d' ' -f2)))
  done
  awk -v t="$total" -v a="$start" -v b="$end" 'BEGIN { printf "%.1f tok/s (%d tokens in %.2f s)", t / (b - a), t, b - a }'
}
node one "$MODEL110" 0:12 2
one=$ADDR
wait_serving "$one"
r1=$(concurrent "$one")
stop_nodes
node a "$MODEL110" 0:6 1
a=$ADDR
node b "$MODEL110" 6:12 1 "$a"
wait_serving "$a"
r2=$(concurrent "$a")
stop_nodes
echo "| 8 concurrent sessions, stories110M shape, 1 stage (2 threads) | $r1 |"
echo "| 8 concurrent sessions, stories110M shape, 2 stages (1 thread each) | $r2 |"

# Accuracy of f16 activations: the reference cases through 5 stages of stories260K (4 hops that
# round the hidden state to f16), compared with llama2.c's output byte for byte.
if command -v python3 >/dev/null; then
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
rm -rf "$LOGS"
