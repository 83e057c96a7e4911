#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR] — what `make bench` runs once the build is done.
#
# Writes TinyLlama-1.1B-shaped models of random weights once to bench/out/ (an f32 llama2.c
# checkpoint, f16, q8_0 and q4_0 GGUF), then runs `troupe bench` on them and on stories260K: one
# markdown table of prompt and generation speed, peak memory, and how close generation comes to
# the memory-bandwidth bound (generation streams every weight once per token, so tok/s <= read
# GB/s / weight bytes per token). With LLAMA2C_RUN, llama2.c's rows follow for comparison.
#
# Environment:
#   TROUPE_MODELS     folder holding stories260K/ and llama2-tokenizer/ (default: ../shared/models)
#   BENCH_THREADS     threads, or a list such as 1,2 (default: all cores)
#   LLAMA2C_RUN       optional llama2.c `run` binary (gcc -Ofast -march=native -fopenmp): adds its
#                     rows for the llama2.c checkpoints, run with OMP_NUM_THREADS=threads
#   LLAMACPP_NODE_MODULES  optional node_modules holding node-llama-cpp (llama.cpp's prebuilt CPU
#                     builds; see bench/llamacpp.mjs): adds llama.cpp's rows for the GGUF files
#   BENCH_SMALL_ONLY=1  only stories260K (no multi-gigabyte files)
# Progress goes to stderr; the table to stdout and to bench/out/results.md, the charts to
# bench/out/report.html (troupe bench --report).
set -euo pipefail

BUILD=$(cd "${1:-build}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MODELS=${TROUPE_MODELS:-$ROOT/../shared/models}
THREADS=${BENCH_THREADS:-0}
OUT=bench/out
TROUPE=$BUILD/troupe
BANDWIDTH=$BUILD/bench/troupe-bandwidth
WRITER=$BUILD/bench/troupe-bench-model
LLAMA2_TOK=$MODELS/llama2-tokenizer/tokenizer.bin
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
FILES=("$MODELS/stories260K/stories260K.bin")
if [[ ${BENCH_SMALL_ONLY:-0} != 1 ]]; then
  write_once "$OUT/tinyllama-1.1b-f32.bin" "$WRITER" --shape tinyllama-1.1b --seed 1 --out "$OUT/tinyllama-1.1b-f32.bin"
  FILES+=("$OUT/tinyllama-1.1b-f32.bin")
  for type in f16 q8_0 q4_0; do
    write_once "$OUT/tinyllama-1.1b-$type.gguf" "$TROUPE" synth --shape tinyllama-1.1b --tied --type "$type" \
      --tokenizer "$LLAMA2_TOK" --out "$OUT/tinyllama-1.1b-$type.gguf"
    FILES+=("$OUT/tinyllama-1.1b-$type.gguf")
  done
fi
sync  # so that write-back does not compete with the measurements

# --- 2. llama.cpp on the same GGUF files, for comparison (measured first, shown after troupe) --------
LLAMACPP=$OUT/llamacpp.jsonl
: >"$LLAMACPP"
if [[ -n ${LLAMACPP_NODE_MODULES:-} ]]; then
  for file in "${FILES[@]}"; do
    [[ $file == *.gguf ]] || continue
    for t in ${THREADS//,/ }; do
      (( t > 0 )) || t=$(nproc)
      log "llama.cpp $(basename "$file") ($t threads)"
      node bench/llamacpp.mjs "$file" --threads "$t" --reps 3 >>"$LLAMACPP" || log "llama.cpp failed on $(basename "$file")"
    done
  done
fi

# --- 3. troupe, and the HTML report with llama.cpp's figures beside ------------------------------
COMPARE=()
[[ -s $LLAMACPP ]] && COMPARE=(--compare "$LLAMACPP")
"$TROUPE" bench "${FILES[@]}" --threads "$THREADS" --report "$OUT/report.html" "${COMPARE[@]}" | tee "$OUT/results.md"
if [[ -s $LLAMACPP ]]; then
  {
    echo
    echo "| engine | model | threads | prompt tok/s | generation tok/s | ms/token |"
    echo "|---|---|---:|---:|---:|---:|"
    node -e 'for (const line of require("fs").readFileSync(process.argv[1], "utf8").split("\n")) {
      if (!line.trim()) continue;
      const r = JSON.parse(line);
      console.log(`| ${r.engine} | ${r.model} | ${r.threads} | ${r.prompt_tok_s.toFixed(1)} | ` +
                  `${r.gen_tok_s.toFixed(2)} | ${(1000 / r.gen_tok_s).toFixed(2)} |`) }' "$LLAMACPP"
  } | tee -a "$OUT/results.md"
fi

# --- 4. llama2.c, for comparison -----------------------------------------------------------------
[[ -n ${LLAMA2C_RUN:-} ]] || exit 0
# llama2.c runs its prompt one token at a time, so its "achieved tok/s" (every position) is its
# generation speed; the bound is troupe's row's for the same file.
PROMPT="Once upon a time there was a little girl named Lily who loved to play outside in the park \
with her friends and her dog. One day she saw a big red ball under a tree and wanted to play with \
it, but her mother said it was time to go home for dinner"
OMP=$THREADS
(( OMP > 0 )) || OMP=$(nproc)
field() { sed -nE "s|.*$2.*|\\1|p" <<<"$1" | tail -n 1; }  # first group of the last matching line
{
  echo
  echo "| engine | model | threads | generation tok/s | ms/token | peak RSS (MiB) |"
  echo "|---|---|---:|---:|---:|---:|"
  for file in "${FILES[@]}"; do
    [[ $file == *.bin ]] || continue
    tok=$LLAMA2_TOK
    [[ $file == */stories260K.bin ]] && tok=$MODELS/stories260K/tok512.bin
    log "llama2.c run $(basename "$file") (OMP_NUM_THREADS=$OMP)"
    rc=0
    err=$(OMP_NUM_THREADS=$OMP /usr/bin/time -f 'peak_rss_kb %M' "$LLAMA2C_RUN" "$file" -z "$tok" -t 0 -n 96 \
      -i "$PROMPT" 2>&1 >/dev/null) || rc=$?
    tps=$(field "$err" 'achieved tok/s: ([0-9.]+)')
    rss=$(( $(field "$err" 'peak_rss_kb ([0-9]+)' || echo 0) / 1024 ))
    if (( rc != 0 )) || [[ -z $tps ]]; then
      echo "| llama2.c | $(basename "$file") | $OMP | failed (exit $rc) | | |"
    else
      awk -v m="$(basename "$file")" -v t="$OMP" -v g="$tps" -v r="$rss" \
        'BEGIN { printf "| llama2.c | %s | %d | %.2f | %.1f | %d |\n", m, t, g, 1000 / g, r }'
    fi
  done
} | tee -a "$OUT/results.md"
