// AVX-512 matvec (F, BW, VL, VNNI). Compiled with those flags and only called when the CPU has
// them all. As in matvec_avx2.cpp: internal linkage only, no standard-library templates.
// GCC 12's _mm256_undefined_pd (behind the 512->256 extracts) trips a false -Wuninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

namespace {

// {sum(a), sum(b), sum(c), sum(d)}
__m128 hsum4_ps(__m512 a, __m512 b, __m512 c, __m512 d) {
  // Fold each 512-bit vector to 256 bits, then the AVX2 hadd ladder.
  auto fold = [](__m512 v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  };
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(fold(a), fold(b)), _mm256_hadd_ps(fold(c), fold(d)));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

__m128i hsum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_hadd_epi32(s, s);
  s = _mm_hadd_epi32(s, s);
  return _mm_cvtsi128_si32(s);
}

// R rows at once, two accumulators per row: 2R independent FMA chains, each load of x shared by
// R rows, the weights streamed once. A masked first step brings row 0's loads to a 64-byte
// boundary (a misaligned 64-byte load touches two cache lines; this costs ~30% when the matrix
// is not aligned); the other rows are aligned too when n % 16 == 0. The last n % 16 columns also
// use a masked load: no scalar tail, and masked-off lanes are never read, so no overrun.
template <int R>
void f32_rows(float* y, const float* w, const float* x, int64_t n) {
  __m512 a[R], b[R];
  for (int r = 0; r < R; r++) a[r] = b[r] = _mm512_setzero_ps();
  int64_t j = static_cast<int64_t>((0 - reinterpret_cast<uintptr_t>(w)) % 64 / 4);
  if (j > n) j = n;
  if (j > 0) {
    const __mmask16 m = static_cast<__mmask16>((1u << j) - 1);
    const __m512 x0 = _mm512_maskz_loadu_ps(m, x);
    for (int r = 0; r < R; r++) b[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + r * n), x0, b[r]);
  }
  for (; j + 32 <= n; j += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + j), x1 = _mm512_loadu_ps(x + j + 16);
    for (int r = 0; r < R; r++) {
      a[r] = _mm512_fmadd_ps(_mm512_loadu_ps(w + r * n + j), x0, a[r]);
      b[r] = _mm512_fmadd_ps(_mm512_loadu_ps(w + r * n + j + 16), x1, b[r]);
    }
  }
  if (j + 16 <= n) {
    const __m512 x0 = _mm512_loadu_ps(x + j);
    for (int r = 0; r < R; r++) a[r] = _mm512_fmadd_ps(_mm512_loadu_ps(w + r * n + j), x0, a[r]);
    j += 16;
  }
  if (j < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - j)) - 1);
    const __m512 x0 = _mm512_maskz_loadu_ps(m, x + j);
    for (int r = 0; r < R; r++) {
      b[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + r * n + j), x0, b[r]);
    }
  }
  for (int r = 0; r < R; r++) a[r] = _mm512_add_ps(a[r], b[r]);
  if constexpr (R == 4) {
    _mm_storeu_ps(y, hsum4_ps(a[0], a[1], a[2], a[3]));
  } else {
    for (int r = 0; r < R; r++) y[r] = _mm512_reduce_add_ps(a[r]);
  }
}

// int8 dot products with VNNI. vpdpbusd multiplies unsigned by signed bytes, so the weights are
// offset to unsigned: (w + 128) = w ^ 0x80, giving sum (w+128)*x = sum w*x + 128*sum x, and the
// correction corr[g] = 128 * sum of group g of x is computed once per call. vpdpbusd does not
// saturate and int32 wraparound cancels in the subtraction, so the group sum is exact for every
// int8 value, -128 included (the abs/sign trick breaks on -128).
// Wide: 64 bytes per step (gs % 64 == 0); else 32 bytes per step (the VL form; gs % 32 == 0).
// The float part repeats runq.c's order per row: val += ((float)ival * ws) * xs (bit-identical),
// vectorized across the R rows.
template <int R, bool Wide>
void q8_rows(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs,
             const int32_t* corr, int64_t n, int64_t gs) {
  const int64_t groups = n / gs;
  __m128 val = _mm_setzero_ps();
  float val1[R];
  for (int r = 0; r < R; r++) val1[r] = 0.0f;
  for (int64_t g = 0; g < groups; g++) {
    __m256i sum[R];
    if constexpr (Wide) {
      const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
      __m512i acc[R];
      for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_si512();
      for (int64_t k = g * gs; k < (g + 1) * gs; k += 64) {
        const __m512i xv = _mm512_loadu_si512(xq + k);
        for (int r = 0; r < R; r++) {
          const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(wq + r * n + k), bias);
          acc[r] = _mm512_dpbusd_epi32(acc[r], wv, xv);
        }
      }
      for (int r = 0; r < R; r++) {
        sum[r] = _mm256_add_epi32(_mm512_castsi512_si256(acc[r]), _mm512_extracti64x4_epi64(acc[r], 1));
      }
    } else {
      const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
      for (int r = 0; r < R; r++) sum[r] = _mm256_setzero_si256();
      for (int64_t k = g * gs; k < (g + 1) * gs; k += 32) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + k));
        for (int r = 0; r < R; r++) {
          const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + r * n + k));
          sum[r] = _mm256_dpbusd_epi32(sum[r], _mm256_xor_si256(wv, bias), xv);
        }
      }
    }
    if constexpr (R == 4) {
      const __m128i isum = _mm_sub_epi32(hsum4_epi32(sum[0], sum[1], sum[2], sum[3]), _mm_set1_epi32(corr[g]));
      // ws index for row r: (r*n + g*gs) / gs = r*groups + g.
      const __m128 wsv = _mm_setr_ps(ws[g], ws[groups + g], ws[2 * groups + g], ws[3 * groups + g]);
      val = _mm_add_ps(val, _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(isum), wsv), _mm_set1_ps(xs[g])));
    } else {
      for (int r = 0; r < R; r++) {
        const int32_t ival = static_cast<int32_t>(static_cast<uint32_t>(hsum_epi32(sum[r])) -
                                                  static_cast<uint32_t>(corr[g]));
        val1[r] += static_cast<float>(ival) * ws[r * groups + g] * xs[g];
      }
    }
  }
  if constexpr (R == 4) {
    _mm_storeu_ps(y, val);
  } else {
    for (int r = 0; r < R; r++) y[r] = val1[r];
  }
}

template <bool Wide>
void q8_matvec(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs,
               const int32_t* corr, int64_t n, int64_t gs, int r0, int r1) {
  const int64_t groups = n / gs;
  int i = r0;
  for (; i + 4 <= r1; i += 4) {
    q8_rows<4, Wide>(y + i, wq + i * n, ws + i * groups, xq, xs, corr, n, gs);
  }
  for (; i < r1; i++) q8_rows<1, Wide>(y + i, wq + i * n, ws + i * groups, xq, xs, corr, n, gs);
}

}  // namespace

void matvec_f32_avx512(float* y, const float* w, const float* x, int n, int r0, int r1) {
  int i = r0;
  for (; i + 4 <= r1; i += 4) f32_rows<4>(y + i, w + static_cast<int64_t>(i) * n, x, n);
  for (; i < r1; i++) f32_rows<1>(y + i, w + static_cast<int64_t>(i) * n, x, n);
}

void matvec_q8_avx512(float* y, const int8_t* wq, const float* ws, const int8_t* xq,
                      const float* xs, int n, int gs, int r0, int r1) {
  if (gs <= 0 || gs % 32 != 0 || n % gs != 0) {  // the vector loop needs whole 32-byte steps
    matvec_q8_ref(y, wq, ws, xq, xs, n, gs, r0, r1);
    return;
  }
  constexpr int kMaxGroups = 4096;  // corr on the stack (16 KiB): n up to 131072 with gs = 32
  const int groups = n / gs;
  if (groups > kMaxGroups) {
    matvec_q8_avx2(y, wq, ws, xq, xs, n, gs, r0, r1);  // AVX2 is there whenever AVX-512 is
    return;
  }
  int32_t corr[kMaxGroups];
  for (int g = 0; g < groups; g++) {
    uint32_t sx = 0;  // unsigned: wraps like vpdpbusd's int32 lanes (only matters for huge gs)
    for (int k = g * gs; k < (g + 1) * gs; k++) sx += static_cast<uint32_t>(xq[k]);
    corr[g] = static_cast<int32_t>(sx << 7);
  }
  if (gs % 64 == 0) {
    q8_matvec<true>(y, wq, ws, xq, xs, corr, n, gs, r0, r1);
  } else {
    q8_matvec<false>(y, wq, ws, xq, xs, corr, n, gs, r0, r1);
  }
}

}  // namespace troupe::kernels::detail
