// AVX2 + FMA (+ F16C) matvec. Compiled with -mavx2 -mfma -mf16c and only called when the CPU has
// all three.
//
// Everything here has internal linkage and no standard-library templates are used: an inline
// template instantiated in this TU would carry AVX2 code that the linker might share with
// scalar code.
#include <immintrin.h>

#include <cstdint>

#include "matvec_blocks_256.hpp"
#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

namespace {

// Lanes [0, rem) set, for the last n % 8 columns (maskload never touches masked-off memory).
__m256i tail_mask(int64_t rem) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// {sum(a), sum(b), sum(c), sum(d)}
__m128 hsum4_ps(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

__m128i hsum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

// R rows at once so each load of x feeds R FMAs; two accumulators per row (2R chains in flight)
// cover the FMA latency. The weights are read once, front to back, in R parallel streams, with
// the next block of rows prefetched into L2 (the hardware prefetcher loses short streams at
// block ends). Each row's floats depend only on that row, x and n: not on R, the row range or
// the address (no alignment peeling), so results do not change with threads or file layout.
template <int R>
void f32_rows(float* y, const float* w, const float* x, int64_t n) {
  __m256 a[R], b[R];
  for (int r = 0; r < R; r++) a[r] = b[r] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + j), x1 = _mm256_loadu_ps(x + j + 8);
    for (int r = 0; r < R; r++) {
      _mm_prefetch(ahead(w + r * n + j, R * n * 4), _MM_HINT_T1);
      a[r] = _mm256_fmadd_ps(_mm256_loadu_ps(w + r * n + j), x0, a[r]);
      b[r] = _mm256_fmadd_ps(_mm256_loadu_ps(w + r * n + j + 8), x1, b[r]);
    }
  }
  if (j + 8 <= n) {
    const __m256 x0 = _mm256_loadu_ps(x + j);
    for (int r = 0; r < R; r++) a[r] = _mm256_fmadd_ps(_mm256_loadu_ps(w + r * n + j), x0, a[r]);
    j += 8;
  }
  if (j < n) {
    const __m256i m = tail_mask(n - j);
    const __m256 x0 = _mm256_maskload_ps(x + j, m);
    for (int r = 0; r < R; r++) {
      b[r] = _mm256_fmadd_ps(_mm256_maskload_ps(w + r * n + j, m), x0, b[r]);
    }
  }
  for (int r = 0; r < R; r++) a[r] = _mm256_add_ps(a[r], b[r]);
  if constexpr (R == 4) {
    _mm_storeu_ps(y, hsum4_ps(a[0], a[1], a[2], a[3]));
  } else {
    // The same reduction order as the 4-row blocks (see above).
    for (int r = 0; r < R; r++) y[r] = _mm_cvtss_f32(hsum4_ps(a[r], a[r], a[r], a[r]));
  }
}

// int8 products, exact for every int8 value (also -128): sign-extend to int16 and let vpmaddwd
// sum pairs into int32 (|pair| <= 2 * 128 * 128, no saturation). The maddubs trick (abs of one
// operand, its sign moved to the other) costs as many instructions per byte once its int16
// results are widened, and is wrong for -128 (saturation, and -(-128) overflowing int8).
// The float part repeats runq.c's per-row order: val += ((float)ival * ws) * xs, so the result
// is bit-identical to the reference. As for f32, the next block's bytes are prefetched.
template <int R>
void q8_rows(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs,
             int64_t n, int64_t gs) {
  const int64_t groups = n / gs;  // ws of row r, group g: ws[r * groups + g]
  __m128 val = _mm_setzero_ps();
  float val1[R];
  for (int r = 0; r < R; r++) val1[r] = 0.0f;
  for (int64_t g = 0; g < groups; g++) {
    __m256i acc[R];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_si256();
    for (int64_t k = g * gs; k < (g + 1) * gs; k += 16) {
      if (k % 64 == 0) {  // one prefetch per 64 bytes of each row
        for (int r = 0; r < R; r++) _mm_prefetch(ahead(wq + r * n + k, R * n), _MM_HINT_T1);
      }
      const __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq + k)));
      for (int r = 0; r < R; r++) {
        const __m256i wv = _mm256_cvtepi8_epi16(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(wq + r * n + k)));
        acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(wv, xv));
      }
    }
    if constexpr (R == 4) {
      const __m128 wsv = _mm_setr_ps(ws[g], ws[groups + g], ws[2 * groups + g], ws[3 * groups + g]);
      const __m128 ival = _mm_cvtepi32_ps(hsum4_epi32(acc[0], acc[1], acc[2], acc[3]));
      val = _mm_add_ps(val, _mm_mul_ps(_mm_mul_ps(ival, wsv), _mm_set1_ps(xs[g])));
    } else {
      for (int r = 0; r < R; r++) {
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc[r]), _mm256_extracti128_si256(acc[r], 1));
        s = _mm_hadd_epi32(s, s);
        s = _mm_hadd_epi32(s, s);
        val1[r] += static_cast<float>(_mm_cvtsi128_si32(s)) * ws[r * groups + g] * xs[g];
      }
    }
  }
  if constexpr (R == 4) {
    _mm_storeu_ps(y, val);
  } else {
    for (int r = 0; r < R; r++) y[r] = val1[r];
  }
}

// f16 weights: as f32_rows, each 8 halves widened by vcvtph2ps (exact). 32 columns a step (64 bytes
// of each row, one prefetch), alternating the two accumulators; the tail (n % 8) goes through a
// zero-padded copy, since AVX2 has no 16-bit masked load. Prefetching as in f32_rows.
__m256 load_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

template <int R>
void f16_rows(float* y, const uint16_t* w, const float* x, int64_t n) {
  __m256 a[R], b[R];
  for (int r = 0; r < R; r++) a[r] = b[r] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m256 x0 = _mm256_loadu_ps(x + j), x1 = _mm256_loadu_ps(x + j + 8);
    const __m256 x2 = _mm256_loadu_ps(x + j + 16), x3 = _mm256_loadu_ps(x + j + 24);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      const uint16_t* wr = w + r * n + j;
      _mm_prefetch(ahead(wr, R * n * 2), _MM_HINT_T1);
      a[r] = _mm256_fmadd_ps(load_f16(wr), x0, a[r]);
      b[r] = _mm256_fmadd_ps(load_f16(wr + 8), x1, b[r]);
      a[r] = _mm256_fmadd_ps(load_f16(wr + 16), x2, a[r]);
      b[r] = _mm256_fmadd_ps(load_f16(wr + 24), x3, b[r]);
    }
  }
  for (int k = 0; k < 3 && j + 8 <= n; k++, j += 8) {  // alternating as above: a, b, a
    const __m256 x0 = _mm256_loadu_ps(x + j);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      if (k == 1) {
        b[r] = _mm256_fmadd_ps(load_f16(w + r * n + j), x0, b[r]);
      } else {
        a[r] = _mm256_fmadd_ps(load_f16(w + r * n + j), x0, a[r]);
      }
    }
  }
  if (j < n) {
    const __m256i m = tail_mask(n - j);
    const __m256 x0 = _mm256_maskload_ps(x + j, m);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t k = j; k < n; k++) tmp[k - j] = w[r * n + k];
      b[r] = _mm256_fmadd_ps(load_f16(tmp), x0, b[r]);
    }
  }
  for (int r = 0; r < R; r++) a[r] = _mm256_add_ps(a[r], b[r]);
  if constexpr (R == 4) {
    _mm_storeu_ps(y, hsum4_ps(a[0], a[1], a[2], a[3]));
  } else {
    for (int r = 0; r < R; r++) y[r] = _mm_cvtss_f32(hsum4_ps(a[r], a[r], a[r], a[r]));
  }
}

// Batched f32 (matmul): R rows x T tokens, each (row, token) with f32_rows's two accumulators,
// the same columns into each, the same tail and the same reduction (a row's lane of hsum4_ps does
// not depend on the other three rows), so each result is the matvec's; each weight load feeds T
// tokens. 2 x 2 keeps the 8 accumulators, 4 x vectors and 2 weights in the 16 registers.
template <int R, int T>
void f32_tile(float* y, int64_t ldy, const float* w, const float* x, int64_t ldx, int64_t n) {
  __m256 a[R][T], b[R][T];
  for (int r = 0; r < R; r++) {
    for (int t = 0; t < T; t++) a[r][t] = b[r][t] = _mm256_setzero_ps();
  }
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m256 x0[T], x1[T];
    for (int t = 0; t < T; t++) {
      x0[t] = _mm256_loadu_ps(x + t * ldx + j);
      x1[t] = _mm256_loadu_ps(x + t * ldx + j + 8);
    }
    for (int r = 0; r < R; r++) {
      __m256 w0 = _mm256_loadu_ps(w + r * n + j), w1 = _mm256_loadu_ps(w + r * n + j + 8);
      // Into registers: else GCC folds the loads into the FMAs and loads each weight T times.
      asm("" : "+v"(w0), "+v"(w1));
      for (int t = 0; t < T; t++) {
        a[r][t] = _mm256_fmadd_ps(w0, x0[t], a[r][t]);
        b[r][t] = _mm256_fmadd_ps(w1, x1[t], b[r][t]);
      }
    }
  }
  if (j + 8 <= n) {
    for (int r = 0; r < R; r++) {
      const __m256 w0 = _mm256_loadu_ps(w + r * n + j);
      for (int t = 0; t < T; t++) a[r][t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * ldx + j), a[r][t]);
    }
    j += 8;
  }
  if (j < n) {
    const __m256i m = tail_mask(n - j);
    for (int r = 0; r < R; r++) {
      const __m256 w0 = _mm256_maskload_ps(w + r * n + j, m);
      for (int t = 0; t < T; t++) {
        b[r][t] = _mm256_fmadd_ps(w0, _mm256_maskload_ps(x + t * ldx + j, m), b[r][t]);
      }
    }
  }
  for (int r = 0; r < R; r++) {
    for (int t = 0; t < T; t++) {
      const __m256 s = _mm256_add_ps(a[r][t], b[r][t]);
      y[t * ldy + r] = _mm_cvtss_f32(hsum4_ps(s, s, s, s));
    }
  }
}

template <int T>
void f32_tokens(float* y, int64_t ldy, const float* w, const float* x, int64_t ldx, int64_t n,
                int r0, int r1) {
  int i = r0;
  for (; i + 2 <= r1; i += 2) f32_tile<2, T>(y + i, ldy, w + i * n, x, ldx, n);
  for (; i < r1; i++) f32_tile<1, T>(y + i, ldy, w + i * n, x, ldx, n);
}

}  // namespace

void matmul_f32_avx2(float* y, int ldy, const Operand& wo, const Operand& xo, int ldx, int n,
                     int count, int r0, int r1) {
  const auto* w = static_cast<const float*>(wo.data);
  const auto* x = static_cast<const float*>(xo.data);
  int t = 0;
  for (; t + 2 <= count; t += 2) {
    f32_tokens<2>(y + int64_t(t) * ldy, ldy, w, x + int64_t(t) * ldx, ldx, n, r0, r1);
  }
  if (t < count) f32_tokens<1>(y + int64_t(t) * ldy, ldy, w, x + int64_t(t) * ldx, ldx, n, r0, r1);
}

// Q8_0 / Q4_0 in ggml's layout: the matvec once per token. (Callers send larger batches to the
// interleaved kernels, interleaved_avx2.cpp: IsaKernels::interleaves_batches.)
void matmul_q8_0_avx2(float* y, int ldy, const Operand& w, const Operand& x, int ldx, int n,
                      int count, int r0, int r1) {
  const auto* xb = static_cast<const BlockQ8_0*>(x.data);
  for (int t = 0; t < count; t++) {
    matvec_q8_0_avx2(y + int64_t(t) * ldy, w, xb + int64_t(t) * ldx, n, r0, r1);
  }
}

void matmul_q4_0_avx2(float* y, int ldy, const Operand& w, const Operand& x, int ldx, int n,
                      int count, int r0, int r1) {
  const auto* xb = static_cast<const BlockQ8_0*>(x.data);
  for (int t = 0; t < count; t++) {
    matvec_q4_0_avx2(y + int64_t(t) * ldy, w, xb + int64_t(t) * ldx, n, r0, r1);
  }
}

void matvec_f32_avx2(float* y, const Operand& wo, const Operand& xo, int n, int r0, int r1) {
  const auto* w = static_cast<const float*>(wo.data);
  const auto* x = static_cast<const float*>(xo.data);
  int i = r0;
  for (; i + 4 <= r1; i += 4) f32_rows<4>(y + i, w + static_cast<int64_t>(i) * n, x, n);
  for (; i < r1; i++) f32_rows<1>(y + i, w + static_cast<int64_t>(i) * n, x, n);
}

void matvec_q8_groups_avx2(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  const int gs = w.group_size;
  if (gs <= 0 || gs % 16 != 0 || n % gs != 0) {  // the vector loop needs whole 16-byte steps
    matvec_q8_groups_ref(y, w, x, n, r0, r1);
    return;
  }
  const auto* wq = static_cast<const int8_t*>(w.data);
  const auto* xq = static_cast<const int8_t*>(x.data);
  const float* ws = w.scales;
  const float* xs = x.scales;
  const int64_t groups = n / gs;
  int i = r0;
  for (; i + 4 <= r1; i += 4) {
    q8_rows<4>(y + i, wq + static_cast<int64_t>(i) * n, ws + i * groups, xq, xs, n, gs);
  }
  for (; i < r1; i++) {
    q8_rows<1>(y + i, wq + static_cast<int64_t>(i) * n, ws + i * groups, xq, xs, n, gs);
  }
}

void dequantize_row_f16_f16c(float* y, const Operand& from, int n) {
  const auto* x = static_cast<const uint16_t*>(from.data);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_f16(x + i));
  for (; i < n; i++) y[i] = fp16_to_fp32(x[i]);
}

void matvec_f16_avx2(float* y, const Operand& wo, const Operand& xo, int n, int r0, int r1) {
  const auto* w = static_cast<const uint16_t*>(wo.data);
  const auto* x = static_cast<const float*>(xo.data);
  int i = r0;
  for (; i + 4 <= r1; i += 4) f16_rows<4>(y + i, w + static_cast<int64_t>(i) * n, x, n);
  for (; i < r1; i++) f16_rows<1>(y + i, w + static_cast<int64_t>(i) * n, x, n);
}

void matvec_q8_0_avx2(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  blocks_matvec<BlockQ8_0, false, false>(y, static_cast<const BlockQ8_0*>(w.data),
                                         static_cast<const BlockQ8_0*>(x.data), n, r0, r1);
}

void matvec_q4_0_avx2(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  blocks_matvec<BlockQ4_0, true, false>(y, static_cast<const BlockQ4_0*>(w.data),
                                        static_cast<const BlockQ8_0*>(x.data), n, r0, r1);
}

}  // namespace troupe::kernels::detail
