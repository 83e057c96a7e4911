// AVX-512 expf_elements (kernels.hpp): glibc's expf bit for bit, 16 floats at a time (AVX2:
// exp_avx2.cpp, the same steps).
//
// run.c's softmax and SwiGLU call libm's expf once per element (~6% of a prompt and a serial
// piece of every generated token). glibc (2.28 on) computes expf in double precision from a
// 32-entry table of 2^(i/32) and a cubic; on CPUs with FMA its ifunc picks the build compiled
// with FMA contraction (__expf_fma), which rounds exactly as the steps below: the same doubles,
// the same fused operations in the same places, so the same float at the end. Checked against
// libm over all 2^32 inputs (tests sample them). Inputs with |x| >= 88 or NaN take glibc's own
// special-case path in libm, lane by lane. Compiled with the flags of matvec_avx512.cpp and only
// called when the CPU has them (FMA with them).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12, inside its own intrinsics
#endif
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "exp_table.hpp"
#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

namespace {

// exp of 8 doubles (converted floats with |x| < 88) rounded to floats.
[[gnu::always_inline]] inline __m256 exp8(__m512d x) {
  const __m512d inv_ln2_32 = _mm512_set1_pd(0x1.71547652b82fep+0 * 32);  // 32 / ln 2
  const __m512d shift = _mm512_set1_pd(0x1.8p+52);  // adding it rounds to an integer
  const __m512d c0 = _mm512_set1_pd(0x1.c6af84b912394p-5 / 32 / 32 / 32);
  const __m512d c1 = _mm512_set1_pd(0x1.ebfce50fac4f3p-3 / 32 / 32);
  const __m512d c2 = _mm512_set1_pd(0x1.62e42ff0c52d6p-1 / 32);
  // x * 32 / ln 2 = k + r, k an integer (in kd's low bits, and as a double), |r| <= 1/2.
  __m512d kd = _mm512_fmadd_pd(inv_ln2_32, x, shift);
  const __m512i k = _mm512_castpd_si512(kd);
  kd = _mm512_sub_pd(kd, shift);
  const __m512d r = _mm512_fmsub_pd(inv_ln2_32, x, kd);
  // s = 2^(k/32): the table entry of k % 32 (two 16-entry permutes, picked by bit 4), plus k << 47.
  const __m512i t0 = _mm512_permutex2var_epi64(_mm512_load_si512(kExp2Table), k,
                                               _mm512_load_si512(kExp2Table + 8));
  const __m512i t1 = _mm512_permutex2var_epi64(_mm512_load_si512(kExp2Table + 16), k,
                                               _mm512_load_si512(kExp2Table + 24));
  const __mmask8 upper = _mm512_test_epi64_mask(k, _mm512_set1_epi64(16));
  const __m512i t = _mm512_mask_blend_epi64(upper, t0, t1);
  const __m512d s = _mm512_castsi512_pd(_mm512_add_epi64(t, _mm512_slli_epi64(k, 47)));
  // 2^(r/32) ~ (c0 r + c1) r^2 + (c2 r + 1)
  const __m512d z = _mm512_fmadd_pd(c0, r, c1);
  const __m512d r2 = _mm512_mul_pd(r, r);
  __m512d y = _mm512_fmadd_pd(c2, r, _mm512_set1_pd(1.0));
  y = _mm512_fmadd_pd(z, r2, y);
  return _mm512_cvtpd_ps(_mm512_mul_pd(y, s));
}

}  // namespace

void expf_elements_avx512(float* y, const float* x, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __m256 lo = _mm256_castpd_ps(_mm512_castpd512_pd256(_mm512_castps_pd(v)));
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    const __m256 e_lo = exp8(_mm512_cvtps_pd(lo)), e_hi = exp8(_mm512_cvtps_pd(hi));
    const __m512 e = _mm512_castpd_ps(_mm512_insertf64x4(
        _mm512_castpd256_pd512(_mm256_castps_pd(e_lo)), _mm256_castps_pd(e_hi), 1));
    // glibc's test for its special cases: the exponent and top mantissa bits of |x| past 88's.
    const __m512i top = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(v), 20),
                                         _mm512_set1_epi32(0x7ff));
    __mmask16 special = _mm512_cmpgt_epi32_mask(top, _mm512_set1_epi32(0x42a));
    _mm512_storeu_ps(y + i, e);  // y may alias x: the special lanes come from v
    for (; special; special &= special - 1) {
      const int j = __builtin_ctz(special);
      y[i + j] = expf(_mm512_cvtss_f32(_mm512_permutexvar_ps(_mm512_set1_epi32(j), v)));
    }
  }
  for (; i < n; i++) y[i] = expf(x[i]);
}

}  // namespace troupe::kernels::detail
