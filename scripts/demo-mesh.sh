#!/usr/bin/env bash
# `make demo`: a small mesh of local nodes on stories260K — two stages and an entry node that
# holds none — answers a prompt through the entry node, shows the mesh, and stops the nodes.
#
#   scripts/demo-mesh.sh BUILD_DIR MODEL_DIR [PROMPT]
set -euo pipefail
BUILD=${1:-build}
MODEL=${2:-../shared/models/stories260K}
PROMPT=${3:-Once upon a time}
T=$BUILD/troupe
PORT=${DEMO_PORT:-7611}
LOGS=$(mktemp -d /tmp/troupe-demo-XXXXXX)
PIDS=()
stop() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT

node() {  # NAME PORT [--layers A:B] [--join ADDR]
  local name=$1 port=$2
  shift 2
  "$T" node --listen "127.0.0.1:$port" --name "$name" --model "$MODEL/stories260K.bin" \
    --tokenizer "$MODEL/tok512.bin" --threads 1 "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS+=($!)
}
node stage-a "$PORT" --layers 0:2
node stage-b "$((PORT + 1))" --layers 2:5 --join "127.0.0.1:$PORT"
node entry "$((PORT + 2))" --join "127.0.0.1:$PORT"
ENTRY=127.0.0.1:$((PORT + 2))

for _ in $(seq 100); do
  "$T" status --peer "$ENTRY" --json 2>/dev/null | grep -q '"serving": true' && break
  sleep 0.1
done
"$T" status --peer "$ENTRY"
echo
"$T" generate --peer "$ENTRY" -t 0 -n 256 -i "$PROMPT"
echo "(node logs: $LOGS)"
