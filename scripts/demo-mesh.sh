#!/usr/bin/env bash
# `make demo`: what troupe does, on local nodes.
#  1. Three nodes join one another with no layers given; they elect a coordinator, which plans
#     the stages; the mesh answers a prompt through any node (stories260K from ../shared, or, in
#     a checkout without it, a small random-weight model made here).
#  2. A larger random-weight model (`troupe synth`), where an answer takes seconds: the node
#     holding the middle stage is killed (kill -9) mid-answer; the mesh re-plans, the answer
#     completes, and it is byte-identical to what one machine writes (`troupe run`).
# Ports are free ones picked here; the temporary folder is removed at the end (kept, and named,
# when something failed).
#
#   scripts/demo-mesh.sh BUILD_DIR MODEL_DIR [PROMPT]
set -euo pipefail
BUILD=${1:-build}
MODEL=${2:-../shared/models/stories260K}
PROMPT=${3:-Once upon a time}
T=$BUILD/troupe
WORK=$(mktemp -d /tmp/troupe-demo-XXXXXX)
PIDS=()
declare -A PID_AT  # listen address -> pid
# Each demo has its own mesh secret, so that it never meets the user's own nodes.
export XDG_CONFIG_HOME=$WORK/config

stop_nodes() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
  done
  PIDS=()
}
finish() {
  local status=$?
  stop_nodes
  if [ "$status" = 0 ]; then rm -rf "$WORK"; else echo "(node logs kept in $WORK)" >&2; fi
}
trap finish EXIT

# A TCP port nothing listens on now (bash's /dev/tcp: a refused connection means free).
free_port() {
  local p
  while true; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# node NAME MODEL_ARGS... [--join ADDR]: starts a node on a free port (its address in ADDR),
# outside the shell's job table (no job messages when it is killed).
node() {
  local name=$1
  shift
  ADDR=127.0.0.1:$(free_port)
  "$T" node --listen "$ADDR" --name "$name" --threads 1 "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  disown "$pid"
  PIDS+=("$pid")
  PID_AT[$ADDR]=$pid
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
# wait_stages PEER [N]: until the mesh serves (through N stages, when given); a node that died on the way (a
# busy port, a bad model) ends the demo with its last log line.
wait_stages() {
  for _ in $(seq 200); do
    for addr in "${!PID_AT[@]}"; do
      if ! kill -0 "${PID_AT[$addr]}" 2>/dev/null; then
        echo "the node at $addr stopped: $(cat "$WORK"/*.log | grep -v '^$' | tail -1)" >&2
        return 1
      fi
    done
    local n
    n=$(stages_serving "$1")
    [ "$n" != 0 ] && [ "${2:-$n}" = "$n" ] && return 0
    sleep 0.1
  done
  echo "the mesh at $1 did not come up" >&2
  return 1
}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# The statistics line of `troupe run` / `troupe generate` (stderr): "N tok/s".
speed() { grep -o 'generated [0-9]* tok, [0-9.]* tok/s' "$1" | awk '{ print $4 " tok/s" }'; }

if [ -f "$MODEL/stories260K.bin" ]; then
  FIRST=(--model "$MODEL/stories260K.bin" --tokenizer "$MODEL/tok512.bin")
  say "1. three nodes join with no layers given: they elect a coordinator and plan the stages"
else
  "$T" synth --shape stories15m --layers-keep 3 --seed 1 --out "$WORK/small.gguf" >/dev/null
  FIRST=(--model "$WORK/small.gguf")
  say "1. three nodes join with no layers given (no ../shared/models/stories260K beside this" \
    "checkout: a small random-weight model stands in, so its text is gibberish; a trained one is" \
    "llama2.c's stories260K.bin with tok512.bin, or any Llama-family GGUF file)"
fi
node alice "${FIRST[@]}"
FIRST_ADDR=$ADDR
node bob "${FIRST[@]}" --join "$FIRST_ADDR"
node carol "${FIRST[@]}" --join "$FIRST_ADDR"
wait_stages "$FIRST_ADDR"
"$T" status --peer "$ADDR"
say "any node answers (here: carol)"
"$T" generate --peer "$ADDR" -t 0 -n 200 -i "$PROMPT" 2>/dev/null
stop_nodes
PID_AT=()

say "2. a larger model (random weights, so the text is gibberish) where an answer takes seconds"
"$T" synth --dim 512 --hidden 1376 --layers 6 --heads 8 --kv-heads 8 --vocab 4096 --seq-len 1024 \
  --seed 3 --out "$WORK/demo.gguf"
ARGS=(-t 1 -s 42 -n 900 -i "$PROMPT")
"$T" run "$WORK/demo.gguf" --threads 1 "${ARGS[@]}" >"$WORK/single.txt" 2>"$WORK/single.err"
node alice --model "$WORK/demo.gguf"
SEED_ADDR=$ADDR
node bob --model "$WORK/demo.gguf" --join "$SEED_ADDR"
node carol --model "$WORK/demo.gguf" --join "$SEED_ADDR"
wait_stages "$SEED_ADDR" 3
"$T" status --peer "$SEED_ADDR"
MIDDLE=$(stage_address "$SEED_ADDR" 1)
ENTRY=$(stage_address "$SEED_ADDR" 0)
say "asking through $ENTRY; the middle stage ($MIDDLE) will be killed in 2 s"
"$T" generate --peer "$ENTRY" "${ARGS[@]}" >"$WORK/mesh.txt" 2>"$WORK/generate.err" &
GEN=$!
sleep 2
kill -9 "${PID_AT[$MIDDLE]}"
echo "killed the node at $MIDDLE"
wait "$GEN"
say "the answer ($(wc -c <"$WORK/mesh.txt") bytes) against one machine's"
if cmp -s "$WORK/mesh.txt" "$WORK/single.txt"; then
  echo "identical to troupe run's, byte for byte"
else
  echo "DIFFERENT from troupe run's" >&2
  exit 1
fi
say "the mesh after the kill"
"$T" status --peer "$ENTRY"
grep -h "re-routing\|is dead\|plan v\|serving through" "$WORK"/*.log | sort | tail -8
say "speed"
echo "one process, 1 thread: $(speed "$WORK/single.err"); three nodes of 1 thread, one killed" \
  "mid-answer: $(speed "$WORK/generate.err") (all on this machine)"
