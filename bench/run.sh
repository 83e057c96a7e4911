#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR] — what `make bench` runs once the build is done.
#
# Measures this machine's memory read bandwidth, then runs `troupe run` greedily on stories260K and
# on TinyLlama-1.1B-shaped models of random weights (f32 llama2.c checkpoint, q8_0 and q4_0 GGUF;
# written once to bench/out/), and prints one markdown table: prompt and generation speed, peak
# memory, and how close generation comes to the memory-bandwidth bound (generation streams every
# weight once per token, so tok/s <= read GB/s / weight bytes per token).
#
# Environment:
#   TROUPE_MODELS     folder holding stories260K/ and llama2-tokenizer/ (default: ../shared/models)
#   BENCH_THREADS     threads (default: nproc)
#   LLAMA2C_RUN       optional llama2.c `run` binary (gcc -Ofast -march=native -fopenmp): adds its
#                     rows for the llama2.c checkpoints, run with OMP_NUM_THREADS=threads
#   BENCH_SMALL_ONLY=1  only stories260K (no multi-gigabyte files)
# Progress goes to stderr; the table to stdout and to bench/out/results.md.
set -euo pipefail

BUILD=$(cd "${1:-build}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MODELS=${TROUPE_MODELS:-$ROOT/../shared/models}
THREADS=${BENCH_THREADS:-$(nproc)}
OUT=bench/out
TROUPE=$BUILD/troupe
BANDWIDTH=$BUILD/bench/troupe-bandwidth
WRITER=$BUILD/bench/troupe-bench-model
LLAMA2_TOK=$MODELS/llama2-tokenizer/tokenizer.bin
# About 64 tokens, so prompt processing is measured over a real batch.
PROMPT="Once upon a time there was a little girl named Lily who loved to play outside in the park \
with her friends and her dog. One day she saw a big red ball under a tree and wanted to play with \
it, but her mother said it was time to go home for dinner"
GEN=32
mkdir -p "$OUT"
log() { echo "bench: $*" >&2; }
for exe in "$TROUPE" "$BANDWIDTH" "$WRITER"; do
  [[ -x $exe ]] || { log "$exe not found (build first: make bench)"; exit 1; }
done

# --- 1. models, written once -------------------------------------------------------------------
write_once() {  # FILE COMMAND...
  local file=$1; shift
  [[ -f $file ]] && return 0
  log "writing $file"
  "$@" >&2
}
if [[ ${BENCH_SMALL_ONLY:-0} != 1 ]]; then
  write_once "$OUT/tinyllama-1.1b-f32.bin" "$WRITER" --shape tinyllama-1.1b --seed 1 --out "$OUT/tinyllama-1.1b-f32.bin"
  for type in q8_0 q4_0; do
    write_once "$OUT/tinyllama-1.1b-$type.gguf" "$TROUPE" synth --shape tinyllama-1.1b --tied --type "$type" \
      --tokenizer "$LLAMA2_TOK" --out "$OUT/tinyllama-1.1b-$type.gguf"
  done
fi

# --- 2. memory read bandwidth (after writing, so write-back does not compete) -------------------
sync
bw_json=$("$BANDWIDTH" --threads "$THREADS" --json)
GBPS=$(sed -nE 's/.*"read_gbps":([0-9.]+).*/\1/p' <<<"$bw_json")
[[ -n $GBPS ]] || { log "could not parse bandwidth output: $bw_json"; exit 1; }
log "read bandwidth $GBPS GB/s ($THREADS threads)"

# --- 3. runs -------------------------------------------------------------------------------------
field() { sed -nE "s|.*$2.*|\\1|p" <<<"$1" | tail -n 1; }  # first group of the last matching line
fmt() { [[ $2 =~ ^[0-9.]+$ ]] && awk -v x="$2" -v f="$1" 'BEGIN { printf f, x }' || echo "$2"; }
ROWS=()
FAILED=0
declare -A MB_PER_TOKEN  # per model, from troupe's stats, for the llama2.c rows

bench() {  # NAME TYPE FILE TOKENIZER
  local name=$1 type=$2 file=$3 tok=$4 err rc=0 mbt bound pct
  [[ -f $file ]] || { log "skipping $name: $file missing"; return 0; }
  log "troupe run $name ($type, $THREADS threads)"
  local args=(run "$file" -t 0 --threads "$THREADS" -i "$PROMPT")
  [[ $file == *.gguf ]] || args+=(-z "$tok")
  # -n: the prompt plus GEN generated tokens (the prompt's token count is read from a first run).
  local n_prompt
  n_prompt=$(field "$("$TROUPE" "${args[@]}" -n 1 2>&1 >/dev/null || true)" 'prompt ([0-9]+) tok')
  "$TROUPE" "${args[@]}" -n $(( ${n_prompt:-64} + GEN )) >"$OUT/$name.out" 2>"$OUT/$name.err" || rc=$?
  err=$(cat "$OUT/$name.err")
  if (( rc != 0 )); then
    log "troupe failed on $name (exit $rc): $(tail -n 1 <<<"$err")"
    FAILED=1
    ROWS+=("| troupe | $name | $type | $THREADS | failed (exit $rc) | | | | | |")
    return 0
  fi
  mbt=$(field "$err" 'weights ([0-9.]+) MB/token')
  MB_PER_TOKEN[$name]=$mbt
  local ptoks gtoks ms rss
  ptoks=$(field "$err" 'prompt [0-9]+ tok \(([0-9.]+) tok/s\)')
  gtoks=$(field "$err" 'generated [0-9]+ tok, ([0-9.]+) tok/s')
  ms=$(field "$err" ' ([0-9.]+) ms/token')
  rss=$(field "$err" 'peak RSS ([0-9.]+) MiB')
  row troupe "$name" "$type" "$(fmt %.1f "$ptoks")" "$(fmt %.2f "$gtoks")" "$(fmt %.1f "$ms")" "$rss" "$mbt" "$gtoks"
  if [[ -n ${LLAMA2C_RUN:-} && $file == *.bin ]]; then
    log "llama2.c run $name (OMP_NUM_THREADS=$THREADS)"
    rc=0
    OMP_NUM_THREADS=$THREADS /usr/bin/time -f 'peak_rss_kb %M' "$LLAMA2C_RUN" "$file" -z "$tok" -t 0 \
      -n $(( ${n_prompt:-64} + GEN )) -i "$PROMPT" >"$OUT/$name.llama2c.out" 2>"$OUT/$name.llama2c.err" || rc=$?
    err=$(cat "$OUT/$name.llama2c.err")
    gtoks=$(field "$err" 'achieved tok/s: ([0-9.]+)')
    rss=$(( $(field "$err" 'peak_rss_kb ([0-9]+)' || echo 0) / 1024 ))
    if (( rc != 0 )) || [[ -z $gtoks ]]; then
      ROWS+=("| llama2.c | $name | $type | $THREADS | failed (exit $rc) | | | | | |")
    else
      row llama2.c "$name" "$type" "–" "$(fmt %.2f "$gtoks")" "$(fmt %.1f "$(awk -v t="$gtoks" 'BEGIN { print 1000 / t }')")" "$rss" "$mbt" "$gtoks"
    fi
  fi
}
row() {  # ENGINE NAME TYPE PROMPT_TOKS GEN_TOKS MS RSS MB_PER_TOKEN GEN_TOKS_RAW
  local bound pct
  bound=$(awk -v g="$GBPS" -v m="$8" 'BEGIN { printf "%.1f", g * 1e3 / m }')
  if awk -v m="$8" 'BEGIN { exit !(m < 64) }'; then
    bound="$bound (fits in cache)"; pct="–"   # small models are not bound by DRAM
  else
    pct=$(awk -v t="$9" -v b="$bound" 'BEGIN { printf "%.0f%%", 100 * t / b }')
  fi
  ROWS+=("| $1 | $2 | $3 | $THREADS | $4 | $5 | $6 | $7 | $8 | $bound | $pct |")
}

bench stories260K f32 "$MODELS/stories260K/stories260K.bin" "$MODELS/stories260K/tok512.bin"
if [[ ${BENCH_SMALL_ONLY:-0} != 1 ]]; then
  bench tinyllama-1.1b f32 "$OUT/tinyllama-1.1b-f32.bin" "$LLAMA2_TOK"
  bench tinyllama-1.1b q8_0 "$OUT/tinyllama-1.1b-q8_0.gguf" ""
  bench tinyllama-1.1b q4_0 "$OUT/tinyllama-1.1b-q4_0.gguf" ""
fi

# --- 4. the table ----------------------------------------------------------------------------------
{
  echo "| engine | model | type | threads | prompt tok/s | generation tok/s | ms/token | peak RSS (MiB) | weights read per token (MB) | bandwidth bound (tok/s) | of bound |"
  echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Greedy, a ${GEN}-token generation after a ~60-token prompt. Bound = measured read bandwidth" \
       "$GBPS GB/s ($THREADS threads) / weight bytes read per generated token."
  [[ -n ${LLAMA2C_RUN:-} ]] || echo "llama2.c not run: set LLAMA2C_RUN to a llama2.c \`run\` binary to add its rows."
} | tee "$OUT/results.md"
exit "$FAILED"
