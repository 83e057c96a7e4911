// AVX-512 instantiation of simd_loops.hpp: attention's loops, expf_elements and the copy into
// interleaved groups on 16 floats a vector. Compiled with the flags of matvec_avx512.cpp and only
// called when the CPU has them.
//
// Only the primitives below are AVX-512's own; the loops are the ones loops_portable.cpp runs on
// plain arrays of 16 lanes, which the tests check against the reference on any CPU.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12, inside its own intrinsics
#endif
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "matvec_impl.hpp"
#include "simd_loops.hpp"

namespace troupe::kernels::detail {

namespace {

#define TROUPE_PRIMITIVE [[gnu::always_inline]] static

// simd_loops.hpp's primitives, each one instruction or a fixed few, in loops_avx2.cpp's order.
struct Avx512 {
  static constexpr int kLanes = 16;
  static constexpr int kAccumulators = 16;  // of 32 zmm registers
  using F = __m512;
  using Mask = __mmask16;
  using I = __m512i;
  using D = __m512d;
  using L = __m512i;
  using H = __m256;

  TROUPE_PRIMITIVE F zero() { return _mm512_setzero_ps(); }
  TROUPE_PRIMITIVE F set1(float a) { return _mm512_set1_ps(a); }
  TROUPE_PRIMITIVE F loadu(const float* p) { return _mm512_loadu_ps(p); }
  TROUPE_PRIMITIVE void storeu(float* p, F v) { _mm512_storeu_ps(p, v); }
  TROUPE_PRIMITIVE F add(F a, F b) { return _mm512_add_ps(a, b); }
  TROUPE_PRIMITIVE F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  TROUPE_PRIMITIVE F div(F a, F b) { return _mm512_div_ps(a, b); }

  TROUPE_PRIMITIVE Mask first(int live) {
    return live >= 16 ? Mask(0xFFFF) : live <= 0 ? Mask(0) : Mask((1u << live) - 1);
  }
  TROUPE_PRIMITIVE F load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  TROUPE_PRIMITIVE void store(float* p, Mask m, F v) { _mm512_mask_storeu_ps(p, m, v); }

  TROUPE_PRIMITIVE I bits(F v) { return _mm512_castps_si512(v); }
  TROUPE_PRIMITIVE I set1i(int32_t a) { return _mm512_set1_epi32(a); }
  template <int N>
  TROUPE_PRIMITIVE I srli(I a) { return _mm512_srli_epi32(a, N); }
  TROUPE_PRIMITIVE I band(I a, I b) { return _mm512_and_si512(a, b); }
  TROUPE_PRIMITIVE unsigned gt(I a, I b) { return _mm512_cmpgt_epi32_mask(a, b); }

  TROUPE_PRIMITIVE I set1_u8(uint8_t a) { return _mm512_set1_epi8(static_cast<char>(a)); }
  TROUPE_PRIMITIVE I bxor(I a, I b) { return _mm512_xor_si512(a, b); }
  TROUPE_PRIMITIVE I loadu_rows(const uint8_t* p, int64_t lane_stride) {
    const auto row = [](const uint8_t* at) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(at)); };
    __m512i v = _mm512_castsi128_si512(row(p));
    v = _mm512_inserti32x4(v, row(p + lane_stride), 1);
    v = _mm512_inserti32x4(v, row(p + 2 * lane_stride), 2);
    return _mm512_inserti32x4(v, row(p + 3 * lane_stride), 3);
  }
  TROUPE_PRIMITIVE void storeu_i(uint8_t* p, I v) { _mm512_storeu_si512(p, v); }
  TROUPE_PRIMITIVE I unpacklo32(I a, I b) { return _mm512_unpacklo_epi32(a, b); }
  TROUPE_PRIMITIVE I unpackhi32(I a, I b) { return _mm512_unpackhi_epi32(a, b); }
  TROUPE_PRIMITIVE I unpacklo64(I a, I b) { return _mm512_unpacklo_epi64(a, b); }
  TROUPE_PRIMITIVE I unpackhi64(I a, I b) { return _mm512_unpackhi_epi64(a, b); }

  TROUPE_PRIMITIVE D widen_lo(F v) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_castpd512_pd256(_mm512_castps_pd(v))));
  }
  TROUPE_PRIMITIVE D widen_hi(F v) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  }
  TROUPE_PRIMITIVE H narrow(D v) { return _mm512_cvtpd_ps(v); }
  TROUPE_PRIMITIVE F join(H lo, H hi) {
    return _mm512_castpd_ps(
        _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
  }
  TROUPE_PRIMITIVE D set1d(double a) { return _mm512_set1_pd(a); }
  TROUPE_PRIMITIVE D subd(D a, D b) { return _mm512_sub_pd(a, b); }
  TROUPE_PRIMITIVE D muld(D a, D b) { return _mm512_mul_pd(a, b); }
  TROUPE_PRIMITIVE D fmadd(D a, D b, D c) { return _mm512_fmadd_pd(a, b, c); }
  TROUPE_PRIMITIVE D fmsub(D a, D b, D c) { return _mm512_fmsub_pd(a, b, c); }
  TROUPE_PRIMITIVE L bits_d(D v) { return _mm512_castpd_si512(v); }
  TROUPE_PRIMITIVE D from_bits(L v) { return _mm512_castsi512_pd(v); }
  TROUPE_PRIMITIVE L add64(L a, L b) { return _mm512_add_epi64(a, b); }
  template <int N>
  TROUPE_PRIMITIVE L shl64(L a) { return _mm512_slli_epi64(a, N); }
  // Two 16-entry permutes (index bits 0-3), picked by bit 4.
  TROUPE_PRIMITIVE L exp2_lookup(L k) {
    const __m512i t0 = _mm512_permutex2var_epi64(_mm512_load_si512(kExp2Table), k,
                                                 _mm512_load_si512(kExp2Table + 8));
    const __m512i t1 = _mm512_permutex2var_epi64(_mm512_load_si512(kExp2Table + 16), k,
                                                 _mm512_load_si512(kExp2Table + 24));
    return _mm512_mask_blend_epi64(_mm512_test_epi64_mask(k, _mm512_set1_epi64(16)), t0, t1);
  }
};

#undef TROUPE_PRIMITIVE

}  // namespace

void key_scores_avx512(float* out, std::ptrdiff_t out_stride, const float* q,
                       std::ptrdiff_t q_stride, int queries, const float* keys, int count, int n,
                       float scale) {
  key_scores_simd<Avx512>(out, out_stride, q, q_stride, queries, keys, count, n, scale);
}

void weighted_sums_avx512(float* out, std::ptrdiff_t out_stride, const float* w,
                          std::ptrdiff_t w_stride, int queries, const float* rows,
                          std::ptrdiff_t stride, int count, int n) {
  weighted_sums_simd<Avx512>(out, out_stride, w, w_stride, queries, rows, stride, count, n);
}

void expf_elements_avx512(float* y, const float* x, int n) { expf_elements_simd<Avx512>(y, x, n); }

void interleave_groups_q8_0_avx512(uint8_t* dst, const void* src, int groups, int nb) {
  interleave_groups_simd<Avx512>(dst, static_cast<const BlockQ8_0*>(src), groups, nb);
}
void interleave_groups_q4_0_avx512(uint8_t* dst, const void* src, int groups, int nb) {
  interleave_groups_simd<Avx512>(dst, static_cast<const BlockQ4_0*>(src), groups, nb);
}

}  // namespace troupe::kernels::detail
