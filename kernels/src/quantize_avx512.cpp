// AVX-512 quantize_row of Q8_0 (kernels.hpp), the reference's bytes for every finite input: the
// same maximum of |x| (a maximum does not depend on order), the same scalar scale and inverse,
// the fp16 scale through the hardware's round-to-nearest-even conversion (the reference's
// software one is that rounding), and each quant rounded half away from zero by the reference's
// steps: truncate, then step by the sign of a fraction of at least one half. Compiled with the
// flags of matvec_avx512.cpp and only called when the CPU has them.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12, inside its own intrinsics
#endif
#include <immintrin.h>

#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

namespace {

// round_to_int8 (reference.cpp) on 16 lanes: 0 outside (-128.5, 127.5) and for NaN.
[[gnu::always_inline]] inline __m128i round_to_int8(__m512 v) {
  const __mmask16 in = _mm512_cmp_ps_mask(v, _mm512_set1_ps(-128.5f), _CMP_GT_OQ) &
                       _mm512_cmp_ps_mask(v, _mm512_set1_ps(127.5f), _CMP_LT_OQ);
  v = _mm512_maskz_mov_ps(in, v);
  __m512i t = _mm512_cvttps_epi32(v);
  const __m512 frac = _mm512_sub_ps(v, _mm512_cvtepi32_ps(t));
  const __m512i one = _mm512_set1_epi32(1);
  t = _mm512_mask_add_epi32(t, _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ), t, one);
  t = _mm512_mask_sub_epi32(t, _mm512_cmp_ps_mask(frac, _mm512_set1_ps(-0.5f), _CMP_LE_OQ), t, one);
  return _mm512_cvtepi32_epi8(t);
}

}  // namespace

void quantize_row_q8_0_avx512(const Destination& to, const float* x, int n) {
  auto* y = static_cast<BlockQ8_0*>(to.data);
  for (int i = 0; i < n / kBlock; i++) {
    const __m512 v0 = _mm512_loadu_ps(x + static_cast<int64_t>(i) * kBlock);
    const __m512 v1 = _mm512_loadu_ps(x + static_cast<int64_t>(i) * kBlock + 16);
    const float amax =
        _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 s = _mm512_set1_ps(id);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs), round_to_int8(_mm512_mul_ps(v0, s)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16), round_to_int8(_mm512_mul_ps(v1, s)));
  }
}

}  // namespace troupe::kernels::detail
