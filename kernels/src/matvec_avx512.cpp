// AVX-512 matvec (F, BW, VL, VNNI). Compiled with those flags and only called when the CPU has
// them all. As in matvec_avx2.cpp: internal linkage only, no standard-library templates.
// GCC 12's _mm256_undefined_pd (behind the 512->256 extracts) trips a false -Wuninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
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

// R rows at once, two accumulators per row: 2R independent FMA chains, each load of x shared by
// R rows, the weights streamed once. The last n % 16 columns use a masked load: no scalar tail,
// and masked-off lanes are never read, so no overrun.
// Each row's floats depend only on that row, x and n: not on R, the row range or the address
// (peeling to a 64-byte boundary would be ~30% faster on unaligned matrices in cache, but would
// make results depend on alignment, e.g. differ between checkpoint versions).
template <int R>
void f32_rows(float* y, const float* w, const float* x, int64_t n) {
  __m512 a[R], b[R];
  for (int r = 0; r < R; r++) a[r] = b[r] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + j), x1 = _mm512_loadu_ps(x + j + 16);
    for (int r = 0; r < R; r++) {
      // The same columns of the next block of rows, into L2 (see q8_rows4 on why).
      _mm_prefetch(ahead(w + r * n + j, R * n * 4), _MM_HINT_T1);
      _mm_prefetch(ahead(w + r * n + j + 16, R * n * 4), _MM_HINT_T1);
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
    // The same reduction order as the 4-row blocks, so a row's result does not depend on how
    // rows are split between threads.
    for (int r = 0; r < R; r++) y[r] = _mm_cvtss_f32(hsum4_ps(a[r], a[r], a[r], a[r]));
  }
}

// Sums of lanes 0-7 and of lanes 8-15 of four vectors: lo = {sum a[0:8], sum b[0:8], sum c[0:8],
// sum d[0:8]}, hi the same for lanes 8-15. Transposing adds, no horizontal adds.
void hsum4_halves(__m512i a, __m512i b, __m512i c, __m512i d, __m128i& lo, __m128i& hi) {
  // Per 128-bit lane: {a0+a2, b0+b2, a1+a3, b1+b3}.
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  // Per 128-bit lane: {a, b, c, d} summed over that lane.
  const __m512i abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
  // Lanes 0+1 hold the low halves, lanes 2+3 the high halves.
  const __m512i s = _mm512_add_epi32(abcd, _mm512_shuffle_i32x4(abcd, abcd, _MM_SHUFFLE(2, 3, 0, 1)));
  lo = _mm512_castsi512_si128(s);
  hi = _mm512_extracti32x4_epi32(s, 2);
}

// val += ((float)isum * ws) * xs, one lane per row: runq.c's order, so bit-identical to it.
__m128 scale_add(__m128 val, __m128i isum, __m128 ws, float xs) {
  return _mm_add_ps(val, _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(isum), ws), _mm_set1_ps(xs)));
}

// int8 dot products with VNNI. vpdpbusd multiplies unsigned by signed bytes, so the weights are
// offset to unsigned: (w + 128) = w ^ 0x80, giving sum (w+128)*x = sum w*x + 128*sum x, and the
// correction corr[g] = 128 * (sum of group g of x) is computed once per call. vpdpbusd does not
// saturate and int32 wraparound cancels in the subtraction, so each group sum is exact for every
// int8 value, -128 included (the abs/sign trick breaks on -128).
//
// Four rows at once share each x load; the float part runs across them in one SSE vector.
// Pair (gs == 32): each 64-byte load spans groups g and g+1, the halves of the accumulator.
// Otherwise: 64-byte steps within a group, and a masked 32-byte step when gs % 64 == 32.
//
// The rows of a block are four short streams (n bytes each) that end at the block boundary, too
// short for the hardware prefetcher to get ahead; prefetching the next block's bytes doubles the
// throughput from DRAM.
template <bool Pair>
void q8_rows4(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs,
              const int32_t* corr, int64_t n, int64_t gs) {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  const int64_t groups = n / gs;  // ws of row r, group g: ws[r * groups + g]
  __m128 val = _mm_setzero_ps();
  int64_t g = 0;
  if constexpr (Pair) {
    for (; g + 2 <= groups; g += 2) {
      const int64_t k = g * 32;
      const __m512i xv = _mm512_loadu_si512(xq + k);
      __m512i acc[4];
      for (int r = 0; r < 4; r++) {
        _mm_prefetch(ahead(wq + r * n + k, 4 * n), _MM_HINT_T0);
        const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(wq + r * n + k), bias);
        acc[r] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv);
      }
      __m128i lo, hi;
      hsum4_halves(acc[0], acc[1], acc[2], acc[3], lo, hi);
      lo = _mm_sub_epi32(lo, _mm_set1_epi32(corr[g]));
      hi = _mm_sub_epi32(hi, _mm_set1_epi32(corr[g + 1]));
      // Each row's scales of groups g and g+1 are adjacent: load pairs, transpose.
      __m128 p[4];
      for (int r = 0; r < 4; r++) {
        p[r] = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(ws + r * groups + g)));
      }
      const __m128 t01 = _mm_unpacklo_ps(p[0], p[1]), t23 = _mm_unpacklo_ps(p[2], p[3]);
      val = scale_add(val, lo, _mm_movelh_ps(t01, t23), xs[g]);
      val = scale_add(val, hi, _mm_movehl_ps(t23, t01), xs[g + 1]);
    }
  }
  for (; g < groups; g++) {  // with Pair, only the last group of an odd count
    __m512i acc[4];
    for (int r = 0; r < 4; r++) acc[r] = _mm512_setzero_si512();
    const int64_t end = (g + 1) * gs;
    int64_t k = g * gs;
    for (; k + 64 <= end; k += 64) {
      const __m512i xv = _mm512_loadu_si512(xq + k);
      for (int r = 0; r < 4; r++) {
        _mm_prefetch(ahead(wq + r * n + k, 4 * n), _MM_HINT_T0);
        const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(wq + r * n + k), bias);
        acc[r] = _mm512_dpbusd_epi32(acc[r], wv, xv);
      }
    }
    if (k < end) {  // 32 bytes left; masked-off bytes load as 0 and add 128 * 0
      const __mmask64 m = 0xFFFFFFFFull;
      const __m512i xv = _mm512_maskz_loadu_epi8(m, xq + k);
      for (int r = 0; r < 4; r++) {
        _mm_prefetch(ahead(wq + r * n + k, 4 * n), _MM_HINT_T0);
        const __m512i wv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, wq + r * n + k), bias);
        acc[r] = _mm512_dpbusd_epi32(acc[r], wv, xv);
      }
    }
    __m128i lo, hi;
    hsum4_halves(acc[0], acc[1], acc[2], acc[3], lo, hi);
    const __m128i isum = _mm_sub_epi32(_mm_add_epi32(lo, hi), _mm_set1_epi32(corr[g]));
    const __m128 wsv = _mm_setr_ps(ws[g], ws[groups + g], ws[2 * groups + g], ws[3 * groups + g]);
    val = scale_add(val, isum, wsv, xs[g]);
  }
  _mm_storeu_ps(y, val);
}

// One row (the last r1 - r0 mod 4 rows), same sums as q8_rows4.
void q8_row1(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs,
             const int32_t* corr, int64_t n, int64_t gs) {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  float val = 0.0f;
  for (int64_t g = 0; g < n / gs; g++) {
    __m512i acc = _mm512_setzero_si512();
    const int64_t end = (g + 1) * gs;
    for (int64_t k = g * gs; k < end; k += 64) {
      const __mmask64 m = end - k >= 64 ? ~0ull : 0xFFFFFFFFull;
      const __m512i wv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, wq + k), bias);
      acc = _mm512_dpbusd_epi32(acc, wv, _mm512_maskz_loadu_epi8(m, xq + k));
    }
    const int32_t ival = static_cast<int32_t>(static_cast<uint32_t>(_mm512_reduce_add_epi32(acc)) -
                                              static_cast<uint32_t>(corr[g]));
    val += static_cast<float>(ival) * ws[g] * xs[g];
  }
  *y = val;
}

}  // namespace

void matvec_f32_avx512(float* y, const float* w, const float* x, int n, int r0, int r1) {
  int i = r0;
  for (; i + 4 <= r1; i += 4) f32_rows<4>(y + i, w + static_cast<int64_t>(i) * n, x, n);
  for (; i < r1; i++) f32_rows<1>(y + i, w + static_cast<int64_t>(i) * n, x, n);
}

void matvec_q8_avx512(float* y, const int8_t* wq, const float* ws, const int8_t* xq,
                      const float* xs, int n, int gs, int r0, int r1) {
  constexpr int kMaxGroups = 4096;  // corr on the stack (16 KiB): n up to 131072 with gs = 32
  if (gs <= 0 || gs % 32 != 0 || n % gs != 0 || n / gs > kMaxGroups) {
    // AVX2 is there whenever AVX-512 is; it takes gs % 16 == 0 and else calls the reference.
    matvec_q8_avx2(y, wq, ws, xq, xs, n, gs, r0, r1);
    return;
  }
  const int groups = n / gs;
  int32_t corr[kMaxGroups];
  for (int g = 0; g < groups; g++) {
    uint32_t sx = 0;  // unsigned: wraps like vpdpbusd's int32 lanes (only matters for huge gs)
    for (int k = g * gs; k < (g + 1) * gs; k++) sx += static_cast<uint32_t>(xq[k]);
    corr[g] = static_cast<int32_t>(sx << 7);
  }
  int i = r0;
  for (; i + 4 <= r1; i += 4) {
    const int8_t* wi = wq + static_cast<int64_t>(i) * n;
    if (gs == 32) {
      q8_rows4<true>(y + i, wi, ws + static_cast<int64_t>(i) * groups, xq, xs, corr, n, gs);
    } else {
      q8_rows4<false>(y + i, wi, ws + static_cast<int64_t>(i) * groups, xq, xs, corr, n, gs);
    }
  }
  for (; i < r1; i++) {
    q8_row1(y + i, wq + static_cast<int64_t>(i) * n, ws + static_cast<int64_t>(i) * groups, xq, xs,
            corr, n, gs);
  }
}

}  // namespace troupe::kernels::detail
