// AVX2 + FMA matvec. Compiled with -mavx2 -mfma and only called when the CPU has both.
//
// Everything here has internal linkage and no standard-library templates are used: an inline
// template instantiated in this TU would carry AVX2 code that the linker might share with
// scalar code.
#include <immintrin.h>

#include <cstdint>

#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

namespace {

// Prefetches of the next block run past the end of the matrix on the last block: prefetches
// never fault, but forming a pointer out of bounds is undefined, so the address is an integer.
const char* ahead(const void* p, int64_t bytes) {
  return reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes));
}

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
        for (int r = 0; r < R; r++) _mm_prefetch(ahead(wq + r * n + k, R * n), _MM_HINT_T0);
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

}  // namespace

void matvec_f32_avx2(float* y, const float* w, const float* x, int n, int r0, int r1) {
  int i = r0;
  for (; i + 4 <= r1; i += 4) f32_rows<4>(y + i, w + static_cast<int64_t>(i) * n, x, n);
  for (; i < r1; i++) f32_rows<1>(y + i, w + static_cast<int64_t>(i) * n, x, n);
}

void matvec_q8_avx2(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs,
                    int n, int gs, int r0, int r1) {
  if (gs <= 0 || gs % 16 != 0 || n % gs != 0) {  // the vector loop needs whole 16-byte steps
    matvec_q8_ref(y, wq, ws, xq, xs, n, gs, r0, r1);
    return;
  }
  const int64_t groups = n / gs;
  int i = r0;
  for (; i + 4 <= r1; i += 4) {
    q8_rows<4>(y + i, wq + static_cast<int64_t>(i) * n, ws + i * groups, xq, xs, n, gs);
  }
  for (; i < r1; i++) {
    q8_rows<1>(y + i, wq + static_cast<int64_t>(i) * n, ws + i * groups, xq, xs, n, gs);
  }
}

}  // namespace troupe::kernels::detail
