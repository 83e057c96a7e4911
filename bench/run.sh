#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR] — what `make bench` runs once the build is done.
#
# Measures this machine's memory read bandwidth, runs `troupe run` greedily on stories260K and on a
# TinyLlama-1.1B-shaped checkpoint of random weights (written once to bench/out/), and prints one
# markdown table: speed, peak memory, and how close each run comes to the memory-bandwidth bound
# (token generation streams every weight once per token, so tok/s <= GB/s / bytes per token).
#
# Environment:
#   TROUPE_MODELS  folder holding stories260K/ and llama2-tokenizer/ (default: ../shared/models
#                  beside the checkout)
#   BENCH_THREADS  threads for everything (default: nproc)
#   LLAMA2C_RUN    optional path to a llama2.c `run` binary (gcc -Ofast -march=native -fopenmp);
#                  when set, each model also gets a llama2.c row, run with OMP_NUM_THREADS=threads
#   BENCH_SMALL_ONLY=1  skip the 1.1B model (no 4.1 GB file, no long run)
# Progress goes to stderr; the table goes to stdout and to bench/out/results.md.
set -euo pipefail

BUILD=$(cd "${1:-build}" && pwd)
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/.." && pwd))
cd "$ROOT"
MODELS=${TROUPE_MODELS:-$ROOT/../shared/models}
THREADS=${BENCH_THREADS:-$(nproc)}
OUT=bench/out
BIG=$OUT/tinyllama-1.1b-f32.bin
PROMPT="Once upon a time"
mkdir -p "$OUT"

log() { echo "bench: $*" >&2; }

# The build may put executables at the top of BUILD or beside their CMakeLists; accept both.
find_exe() {
  local d
  for d in "$BUILD" "$BUILD/bench" "$BUILD/cli" "$BUILD/bin"; do
    if [[ -x $d/$1 && -f $d/$1 ]]; then echo "$d/$1"; return 0; fi
  done
  return 1
}
BANDWIDTH=$(find_exe troupe-bandwidth) || { log "troupe-bandwidth not found under $BUILD (build first)"; exit 1; }
WRITER=$(find_exe troupe-bench-model) || { log "troupe-bench-model not found under $BUILD (build first)"; exit 1; }
TROUPE=$(find_exe troupe) || { log "troupe not found under $BUILD (build first)"; exit 1; }

# --- 1. the 1.1B-shaped model: written once (about 4.1 GB, ~10 s), then reused --------------------
if [[ ${BENCH_SMALL_ONLY:-0} != 1 && ! -f $BIG ]]; then
  free_kb=$(df -Pk "$OUT" | awk 'NR == 2 { print $4 }')
  if (( free_kb < 4500000 )); then
    log "less than 4.5 GB free in $OUT: skipping the 1.1B model"
  else
    log "writing $BIG"
    "$WRITER" --shape tinyllama-1.1b --seed 1 --out "$BIG" >&2
  fi
fi

# --- 2. memory read bandwidth ------------------------------------------------------------------------
# After the model is written, so the run does not compete with write-back of its pages.
bw_json=$("$BANDWIDTH" --threads "$THREADS" --json)
GBPS=$(sed -nE 's/.*"read_gbps":([0-9.]+).*/\1/p' <<<"$bw_json")
BW_ISA=$(sed -nE 's/.*"isa":"([a-z0-9]+)".*/\1/p' <<<"$bw_json")
[[ -n $GBPS ]] || { log "could not parse bandwidth output: $bw_json"; exit 1; }
log "read bandwidth $GBPS GB/s ($THREADS threads, $BW_ISA)"

# --- helpers -----------------------------------------------------------------------------------------
# Weight bytes one generated token reads, from the checkpoint header (7 int32, llama2.c layout):
# per layer wq, wk, wv, wo, w1, w2, w3 and the two norms; then the final norm, the classifier
# (vocab x dim, whether shared with the embedding or not) and one embedding row. fp32 = 4 bytes.
bytes_per_token() {
  od -An -v -w28 -t d4 -N 28 "$1" | awk '{
    dim = $1; hid = $2; L = $3; heads = $4; kvh = $5; vocab = ($6 < 0 ? -$6 : $6)
    kv = dim * kvh / heads
    per_layer = 2 * dim * dim + 2 * dim * kv + 3 * dim * hid + 2 * dim
    printf "%.0f\n", 4 * (L * per_layer + dim + vocab * dim + dim) }'
}
# First number after a label in the stats text, e.g. field "$err" 'peak RSS ([0-9.]+) MiB'.
field() { sed -nE "s|.*$2.*|\\1|p" <<<"$1" | tail -n 1; }  # "|" delimiter: patterns hold "/"

# Models smaller than the last-level cache are not bound by DRAM bandwidth (32 MiB if unknown).
LLC_BYTES=$(getconf LEVEL3_CACHE_SIZE 2>/dev/null || true)
[[ $LLC_BYTES =~ ^[1-9][0-9]*$ ]] || LLC_BYTES=$((32 << 20))

ROWS=()
FAILED=0  # a troupe run that fails still gets its row, then the script exits 1
# row ENGINE MODEL FILE THREADS TOKS MS RSS: appends one table row, computing the bound columns.
row() {
  local engine=$1 model=$2 file=$3 thr=$4 toks=$5 ms=$6 rss=$7 mb bpt bound pct
  mb=$(awk -v s="$(stat -c %s "$file")" 'BEGIN { printf "%.1f", s / 1e6 }')
  bpt=$(bytes_per_token "$file")
  bound=$(awk -v g="$GBPS" -v b="$bpt" 'BEGIN { printf "%.1f", g * 1e9 / b }')
  if (( bpt < LLC_BYTES )); then
    bound="$bound (in cache)"  # weights stay in the last-level cache: DRAM is not the limit
    pct="–"
  elif [[ $toks =~ ^[0-9.]+$ ]]; then
    pct=$(awk -v t="$toks" -v b="$bound" 'BEGIN { printf "%.0f%%", 100 * t / b }')
  else
    pct="–"
  fi
  ROWS+=("| $engine | $model | $mb | $thr | $toks | $ms | $rss | $bound | $pct |")
}

# bench_model NAME FILE TOKENIZER STEPS
bench_model() {
  local name=$1 file=$2 tok=$3 steps=$4 err rc toks ms rss thr
  if [[ ! -f $file || ! -f $tok ]]; then
    log "skipping $name: $file or $tok missing"
    return 0
  fi
  log "troupe run $name (-n $steps, $THREADS threads)"
  rc=0
  "$TROUPE" run "$file" -z "$tok" -t 0 -p 0.9 -s 1 -n "$steps" -i "$PROMPT" --threads "$THREADS" \
    >"$OUT/$name.troupe.out" 2>"$OUT/$name.troupe.err" || rc=$?
  err=$(cat "$OUT/$name.troupe.err")
  if (( rc != 0 )); then
    log "troupe failed on $name (exit $rc): $(tail -n 1 <<<"$err")"
    FAILED=1
    row troupe "$name" "$file" "$THREADS" "failed (exit $rc)" – – 
  else
    # troupe: prompt N tok, generated M tok, X tok/s, first token X ms, X ms/token, peak RSS X MiB, threads N, ...
    toks=$(field "$err" 'generated [0-9]+ tok, ([0-9.]+) tok/s')
    [[ -n $toks ]] || toks=$(field "$err" 'achieved tok/s: ([0-9.]+)')
    ms=$(field "$err" ' ([0-9.]+) ms/token')
    rss=$(field "$err" 'peak RSS ([0-9.]+) MiB')
    thr=$(field "$err" 'threads ([0-9]+)')
    [[ -n $toks ]] || log "no tok/s in troupe's stderr for $name (see $OUT/$name.troupe.err)"
    row troupe "$name" "$file" "${thr:-$THREADS}" "$(fmt2 "${toks:-?}")" "$(fmt1 "${ms:-?}")" "${rss:-?}"
  fi

  if [[ -n ${LLAMA2C_RUN:-} ]]; then
    log "llama2.c run $name (OMP_NUM_THREADS=$THREADS)"
    local timer=()
    # GNU time gives llama2.c's peak RSS; without it that cell stays empty.
    if /usr/bin/time -f %M true >/dev/null 2>&1; then timer=(/usr/bin/time -f 'peak_rss_kb %M'); fi
    rc=0
    OMP_NUM_THREADS=$THREADS "${timer[@]}" "$LLAMA2C_RUN" "$file" -z "$tok" -t 0 -p 0.9 -s 1 -n "$steps" \
      -i "$PROMPT" >"$OUT/$name.llama2c.out" 2>"$OUT/$name.llama2c.err" || rc=$?
    err=$(cat "$OUT/$name.llama2c.err")
    toks=$(field "$err" 'achieved tok/s: ([0-9.]+)')
    rss=$(field "$err" 'peak_rss_kb ([0-9]+)')
    if (( rc != 0 )) || [[ -z $toks ]]; then
      row llama2.c "$name" "$file" "$THREADS" "failed (exit $rc)" – –
    else
      ms=$(awk -v t="$toks" 'BEGIN { printf "%.1f", 1000 / t }')
      [[ -n $rss ]] && rss=$(( rss / 1024 )) || rss=–
      row llama2.c "$name" "$file" "$THREADS" "$(fmt2 "$toks")" "$ms" "$rss"
    fi
  fi
}
fmt1() { [[ $1 =~ ^[0-9.]+$ ]] && awk -v x="$1" 'BEGIN { printf "%.1f", x }' || echo "$1"; }
fmt2() { [[ $1 =~ ^[0-9.]+$ ]] && awk -v x="$1" 'BEGIN { printf "%.2f", x }' || echo "$1"; }

# --- 3. the runs -------------------------------------------------------------------------------------
bench_model stories260K "$MODELS/stories260K/stories260K.bin" "$MODELS/stories260K/tok512.bin" 256
if [[ ${BENCH_SMALL_ONLY:-0} != 1 ]]; then
  bench_model tinyllama-1.1b-f32 "$BIG" "$MODELS/llama2-tokenizer/tokenizer.bin" 24
fi

# --- 4. the table ------------------------------------------------------------------------------------
{
  echo "| engine | model | weights (MB) | threads | tok/s | ms/token | peak RSS (MiB) | bandwidth bound tok/s | of bound |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Greedy (\`-t 0\`), prompt \"$PROMPT\". Bound = measured read bandwidth $GBPS GB/s ($THREADS threads," \
       "$BW_ISA) / fp32 weight bytes read per token (all matrices, the classifier and the norms)."
  if [[ -z ${LLAMA2C_RUN:-} ]]; then
    echo "llama2.c not run: set LLAMA2C_RUN to a llama2.c \`run\` binary to add its rows."
  fi
} | tee "$OUT/results.md"
exit "$FAILED"
