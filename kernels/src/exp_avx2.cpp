// AVX2 expf_elements (kernels.hpp): exp_avx512.cpp's steps (glibc's expf with FMA, bit for bit)
// on 4 doubles a vector, 8 floats a step; the table entry by a gather. Compiled with the flags of
// matvec_avx2.cpp (FMA among them) and only called when the CPU has them.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "exp_table.hpp"
#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

namespace {

// exp of 4 doubles (converted floats with |x| < 88) rounded to floats.
[[gnu::always_inline]] inline __m128 exp4(__m256d x) {
  const __m256d inv_ln2_32 = _mm256_set1_pd(0x1.71547652b82fep+0 * 32);
  const __m256d shift = _mm256_set1_pd(0x1.8p+52);
  const __m256d c0 = _mm256_set1_pd(0x1.c6af84b912394p-5 / 32 / 32 / 32);
  const __m256d c1 = _mm256_set1_pd(0x1.ebfce50fac4f3p-3 / 32 / 32);
  const __m256d c2 = _mm256_set1_pd(0x1.62e42ff0c52d6p-1 / 32);
  __m256d kd = _mm256_fmadd_pd(inv_ln2_32, x, shift);
  const __m256i k = _mm256_castpd_si256(kd);
  kd = _mm256_sub_pd(kd, shift);
  const __m256d r = _mm256_fmsub_pd(inv_ln2_32, x, kd);
  const __m256i index = _mm256_and_si256(k, _mm256_set1_epi64x(31));
  const auto* table = reinterpret_cast<const long long*>(kExp2Table);
  const __m256i t = _mm256_i64gather_epi64(table, index, 8);
  const __m256d s = _mm256_castsi256_pd(_mm256_add_epi64(t, _mm256_slli_epi64(k, 47)));
  const __m256d z = _mm256_fmadd_pd(c0, r, c1);
  const __m256d r2 = _mm256_mul_pd(r, r);
  __m256d y = _mm256_fmadd_pd(c2, r, _mm256_set1_pd(1.0));
  y = _mm256_fmadd_pd(z, r2, y);
  return _mm256_cvtpd_ps(_mm256_mul_pd(y, s));
}

}  // namespace

void expf_elements_avx2(float* y, const float* x, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m128 lo = exp4(_mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    const __m128 hi = exp4(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    // glibc's special cases (|x| >= 88, NaN) through libm, lane by lane, as exp_avx512.cpp.
    const __m256i top = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(v), 20),
                                         _mm256_set1_epi32(0x7ff));
    const __m256i past = _mm256_cmpgt_epi32(top, _mm256_set1_epi32(0x42a));
    int special = _mm256_movemask_ps(_mm256_castsi256_ps(past));
    alignas(32) float in[8];
    if (special) _mm256_store_ps(in, v);  // y may alias x
    _mm256_storeu_ps(y + i, _mm256_set_m128(hi, lo));
    for (; special; special &= special - 1) {
      const int j = __builtin_ctz(static_cast<unsigned>(special));
      y[i + j] = expf(in[j]);
    }
  }
  for (; i < n; i++) y[i] = expf(x[i]);
}

}  // namespace troupe::kernels::detail
