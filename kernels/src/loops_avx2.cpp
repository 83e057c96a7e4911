// AVX2 (with FMA, F16C) instantiation of simd_loops.hpp: attention's loops, expf_elements and the
// copy into interleaved groups on 8 floats a vector. Compiled with the flags of matvec_avx2.cpp
// and only called when the CPU has them.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "matvec_impl.hpp"
#include "simd_loops.hpp"

namespace troupe::kernels::detail {

namespace {

#define TROUPE_PRIMITIVE [[gnu::always_inline]] static

// simd_loops.hpp's primitives, each one instruction or a fixed few. loops_avx512.cpp and
// loops_portable.cpp list theirs in the same order.
struct Avx2 {
  static constexpr int kLanes = 8;
  static constexpr int kAccumulators = 8;  // of 16 ymm registers
  using F = __m256;
  using Mask = __m256i;  // all ones in a live lane (maskload / maskstore take each lane's top bit)
  using I = __m256i;
  using D = __m256d;
  using L = __m256i;
  using H = __m128;

  TROUPE_PRIMITIVE F zero() { return _mm256_setzero_ps(); }
  TROUPE_PRIMITIVE F set1(float a) { return _mm256_set1_ps(a); }
  TROUPE_PRIMITIVE F loadu(const float* p) { return _mm256_loadu_ps(p); }
  TROUPE_PRIMITIVE void storeu(float* p, F v) { _mm256_storeu_ps(p, v); }
  TROUPE_PRIMITIVE F add(F a, F b) { return _mm256_add_ps(a, b); }
  TROUPE_PRIMITIVE F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  TROUPE_PRIMITIVE F div(F a, F b) { return _mm256_div_ps(a, b); }

  TROUPE_PRIMITIVE Mask first(int live) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(live), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  TROUPE_PRIMITIVE F load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  TROUPE_PRIMITIVE void store(float* p, Mask m, F v) { _mm256_maskstore_ps(p, m, v); }

  TROUPE_PRIMITIVE I bits(F v) { return _mm256_castps_si256(v); }
  TROUPE_PRIMITIVE I set1i(int32_t a) { return _mm256_set1_epi32(a); }
  template <int N>
  TROUPE_PRIMITIVE I srli(I a) { return _mm256_srli_epi32(a, N); }
  TROUPE_PRIMITIVE I band(I a, I b) { return _mm256_and_si256(a, b); }
  TROUPE_PRIMITIVE unsigned gt(I a, I b) {
    return static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(a, b))));
  }

  TROUPE_PRIMITIVE I set1_u8(uint8_t a) { return _mm256_set1_epi8(static_cast<char>(a)); }
  TROUPE_PRIMITIVE I bxor(I a, I b) { return _mm256_xor_si256(a, b); }
  TROUPE_PRIMITIVE I loadu_rows(const uint8_t* p, int64_t lane_stride) {
    const auto row = [](const uint8_t* at) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(at)); };
    return _mm256_set_m128i(row(p + lane_stride), row(p));
  }
  TROUPE_PRIMITIVE void storeu_i(uint8_t* p, I v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  TROUPE_PRIMITIVE I unpacklo32(I a, I b) { return _mm256_unpacklo_epi32(a, b); }
  TROUPE_PRIMITIVE I unpackhi32(I a, I b) { return _mm256_unpackhi_epi32(a, b); }
  TROUPE_PRIMITIVE I unpacklo64(I a, I b) { return _mm256_unpacklo_epi64(a, b); }
  TROUPE_PRIMITIVE I unpackhi64(I a, I b) { return _mm256_unpackhi_epi64(a, b); }

  TROUPE_PRIMITIVE D widen_lo(F v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
  TROUPE_PRIMITIVE D widen_hi(F v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
  TROUPE_PRIMITIVE H narrow(D v) { return _mm256_cvtpd_ps(v); }
  TROUPE_PRIMITIVE F join(H lo, H hi) { return _mm256_set_m128(hi, lo); }
  TROUPE_PRIMITIVE D set1d(double a) { return _mm256_set1_pd(a); }
  TROUPE_PRIMITIVE D subd(D a, D b) { return _mm256_sub_pd(a, b); }
  TROUPE_PRIMITIVE D muld(D a, D b) { return _mm256_mul_pd(a, b); }
  TROUPE_PRIMITIVE D fmadd(D a, D b, D c) { return _mm256_fmadd_pd(a, b, c); }
  TROUPE_PRIMITIVE D fmsub(D a, D b, D c) { return _mm256_fmsub_pd(a, b, c); }
  TROUPE_PRIMITIVE L bits_d(D v) { return _mm256_castpd_si256(v); }
  TROUPE_PRIMITIVE D from_bits(L v) { return _mm256_castsi256_pd(v); }
  TROUPE_PRIMITIVE L add64(L a, L b) { return _mm256_add_epi64(a, b); }
  template <int N>
  TROUPE_PRIMITIVE L shl64(L a) { return _mm256_slli_epi64(a, N); }
  TROUPE_PRIMITIVE L exp2_lookup(L k) {
    const auto* table = reinterpret_cast<const long long*>(kExp2Table);
    return _mm256_i64gather_epi64(table, _mm256_and_si256(k, _mm256_set1_epi64x(31)), 8);
  }
};

#undef TROUPE_PRIMITIVE

}  // namespace

void key_scores_avx2(float* out, std::ptrdiff_t out_stride, const float* q,
                     std::ptrdiff_t q_stride, int queries, const float* keys, int count, int n,
                     float scale) {
  key_scores_simd<Avx2>(out, out_stride, q, q_stride, queries, keys, count, n, scale);
}

void weighted_sums_avx2(float* out, std::ptrdiff_t out_stride, const float* w,
                        std::ptrdiff_t w_stride, int queries, const float* rows,
                        std::ptrdiff_t stride, int count, int n) {
  weighted_sums_simd<Avx2>(out, out_stride, w, w_stride, queries, rows, stride, count, n);
}

void expf_elements_avx2(float* y, const float* x, int n) { expf_elements_simd<Avx2>(y, x, n); }

void interleave_groups_q8_0_avx2(uint8_t* dst, const void* src, int groups, int nb) {
  interleave_groups_simd<Avx2>(dst, static_cast<const BlockQ8_0*>(src), groups, nb);
}
void interleave_groups_q4_0_avx2(uint8_t* dst, const void* src, int groups, int nb) {
  interleave_groups_simd<Avx2>(dst, static_cast<const BlockQ4_0*>(src), groups, nb);
}

}  // namespace troupe::kernels::detail
