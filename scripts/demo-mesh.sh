#!/usr/bin/env bash
# `make demo`: what troupe does, on local nodes.
#  1. Three nodes join one another with no layers given; they elect a coordinator, which plans
#     the stages; the mesh answers a prompt on stories260K through any node.
#  2. The same on a larger random-weight model (`troupe synth`), where an answer takes seconds:
#     the node holding the middle stage is killed (kill -9) mid-answer; the mesh re-plans, the
#     answer completes, and it is byte-identical to what one machine writes (`troupe run`).
#
#   scripts/demo-mesh.sh BUILD_DIR MODEL_DIR [PROMPT]
set -euo pipefail
BUILD=${1:-build}
MODEL=${2:-../shared/models/stories260K}
PROMPT=${3:-Once upon a time}
T=$BUILD/troupe
PORT=${DEMO_PORT:-7611}
WORK=$(mktemp -d /tmp/troupe-demo-XXXXXX)
PIDS=()
declare -A PID_AT  # listen address -> pid
stop() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT

node() {  # NAME PORT MODEL_ARGS... [--join ADDR]
  local name=$1 port=$2
  shift 2
  "$T" node --listen "127.0.0.1:$port" --name "$name" --threads 1 "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  PID_AT["127.0.0.1:$port"]=$!
}
# From `troupe status` (text): the number of stages when the mesh serves, else 0; the address
# of the node holding stage I.
stages_serving() {
  "$T" status --peer "$1" 2>/dev/null |
    awk '/^plan v/ { sub(/^[^:]*: /, ""); n = NF / 2 } /^serving$/ { ok = 1 } END { print ok ? n : 0 }'
}
stage_address() {  # PEER I
  "$T" status --peer "$1" | awk -v i="$2" '
    /^  / { addr[$1] = $2 }
    /^plan v/ { sub(/^[^:]*: /, ""); name = $(2 * i + 1) }
    END { print addr[name] }'
}
wait_stages() {  # PEER N: until the mesh serves through N stages
  for _ in $(seq 200); do
    [ "$(stages_serving "$1")" = "$2" ] && return 0
    sleep 0.1
  done
  echo "the mesh at $1 did not come up; logs in $WORK" >&2
  return 1
}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. three nodes join with no layers given: they elect a coordinator and plan the stages"
STORIES=(--model "$MODEL/stories260K.bin" --tokenizer "$MODEL/tok512.bin")
node alice "$PORT" "${STORIES[@]}"
node bob "$((PORT + 1))" "${STORIES[@]}" --join "127.0.0.1:$PORT"
node carol "$((PORT + 2))" "${STORIES[@]}" --join "127.0.0.1:$PORT"
wait_stages "127.0.0.1:$PORT" 3
"$T" status --peer "127.0.0.1:$((PORT + 2))"
say "any node answers (here: carol)"
"$T" generate --peer "127.0.0.1:$((PORT + 2))" -t 0 -n 200 -i "$PROMPT"
stop
PIDS=()

say "2. a larger model (random weights, so the text is gibberish) where an answer takes seconds"
"$T" synth --dim 512 --hidden 1376 --layers 6 --heads 8 --kv-heads 8 --vocab 4096 --seq-len 1024 \
  --seed 3 --out "$WORK/demo.gguf"
ARGS=(-t 1 -s 42 -n 900 -i "$PROMPT")
"$T" run "$WORK/demo.gguf" --threads 1 "${ARGS[@]}" >"$WORK/single.txt" 2>/dev/null
P2=$((PORT + 10))
node alice "$P2" --model "$WORK/demo.gguf"
node bob "$((P2 + 1))" --model "$WORK/demo.gguf" --join "127.0.0.1:$P2"
node carol "$((P2 + 2))" --model "$WORK/demo.gguf" --join "127.0.0.1:$P2"
wait_stages "127.0.0.1:$P2" 3
"$T" status --peer "127.0.0.1:$P2"
MIDDLE=$(stage_address "127.0.0.1:$P2" 1)
ENTRY=$(stage_address "127.0.0.1:$P2" 0)
say "asking through $ENTRY; the middle stage ($MIDDLE) will be killed in 2 s"
"$T" generate --peer "$ENTRY" "${ARGS[@]}" >"$WORK/mesh.txt" 2>"$WORK/generate.err" &
GEN=$!
sleep 2
kill -9 "${PID_AT[$MIDDLE]}"
echo "killed the node at $MIDDLE"
wait "$GEN"
tail -1 "$WORK/generate.err"
say "the answer ($(wc -c <"$WORK/mesh.txt") bytes) against one machine's"
if cmp -s "$WORK/mesh.txt" "$WORK/single.txt"; then
  echo "identical to troupe run's, byte for byte"
else
  echo "DIFFERENT from troupe run's (see $WORK)" >&2
  exit 1
fi
say "the mesh after the kill"
"$T" status --peer "$ENTRY"
grep -h "re-routing\|is dead\|plan v\|serving through" "$WORK"/*.log | sort | tail -8
echo "(node logs: $WORK)"
