// Portable instantiations of simd_loops.hpp (loops_portable.hpp): the primitives of
// loops_avx2.cpp and loops_avx512.cpp on plain arrays, one lane at a time, with the same meaning
// lane for lane (fmadd / fmsub as std::fma: one rounding, as the FMA instructions). Compiled
// without ISA flags.
#include "loops_portable.hpp"

#include <cmath>
#include <cstring>

#include "simd_loops.hpp"

namespace troupe::kernels::detail {

namespace {

template <int W>
struct Portable {
  static constexpr int kLanes = W;
  static constexpr int kAccumulators = W;  // as the x86 build of this width (8: AVX2, 16: AVX-512)
  struct F { float v[W]; };
  using Mask = int;  // live lanes, 0..W
  struct I { uint32_t v[W]; };
  struct D { double v[W / 2]; };
  struct L { uint64_t v[W / 2]; };
  struct H { float v[W / 2]; };

  template <class V, class Op>
  static V each(Op op) {
    V out;
    for (int j = 0; j < int(sizeof out.v / sizeof out.v[0]); j++) out.v[j] = op(j);
    return out;
  }

  static F zero() { return each<F>([](int) { return 0.0f; }); }
  static F set1(float a) { return each<F>([&](int) { return a; }); }
  static F loadu(const float* p) { return each<F>([&](int j) { return p[j]; }); }
  static void storeu(float* p, F v) { std::memcpy(p, v.v, sizeof v.v); }
  static F add(F a, F b) { return each<F>([&](int j) { return a.v[j] + b.v[j]; }); }
  static F mul(F a, F b) { return each<F>([&](int j) { return a.v[j] * b.v[j]; }); }
  static F div(F a, F b) { return each<F>([&](int j) { return a.v[j] / b.v[j]; }); }

  static Mask first(int live) { return live < 0 ? 0 : live > W ? W : live; }
  static F load(const float* p, Mask m) { return each<F>([&](int j) { return j < m ? p[j] : 0.0f; }); }
  static void store(float* p, Mask m, F v) {
    for (int j = 0; j < m; j++) p[j] = v.v[j];
  }

  static I bits(F v) {
    I out;
    std::memcpy(out.v, v.v, sizeof out.v);
    return out;
  }
  static I set1i(int32_t a) { return each<I>([&](int) { return static_cast<uint32_t>(a); }); }
  template <int N>
  static I srli(I a) { return each<I>([&](int j) { return a.v[j] >> N; }); }
  static I band(I a, I b) { return each<I>([&](int j) { return a.v[j] & b.v[j]; }); }
  static unsigned gt(I a, I b) {
    unsigned m = 0;
    for (int j = 0; j < W; j++) m |= unsigned(int32_t(a.v[j]) > int32_t(b.v[j])) << j;
    return m;
  }

  static I set1_u8(uint8_t a) { return each<I>([&](int) { return 0x01010101u * a; }); }
  static I bxor(I a, I b) { return each<I>([&](int j) { return a.v[j] ^ b.v[j]; }); }
  static I loadu_rows(const uint8_t* p, int64_t lane_stride) {
    I out;
    for (int k = 0; k < W / 4; k++) std::memcpy(out.v + 4 * k, p + k * lane_stride, 16);
    return out;
  }
  static void storeu_i(uint8_t* p, I v) { std::memcpy(p, v.v, sizeof v.v); }
  // SSE's unpacks in each 128-bit lane (4 words): lo32 a0 b0 a1 b1, hi32 a2 b2 a3 b3,
  // lo64 a0 a1 b0 b1, hi64 a2 a3 b2 b3.
  static I unpack(I a, I b, const int (&from)[4]) {
    return each<I>([&](int j) {
      const int base = j / 4 * 4, f = from[j % 4];
      return f < 4 ? a.v[base + f] : b.v[base + f - 4];
    });
  }
  static I unpacklo32(I a, I b) { return unpack(a, b, {0, 4, 1, 5}); }
  static I unpackhi32(I a, I b) { return unpack(a, b, {2, 6, 3, 7}); }
  static I unpacklo64(I a, I b) { return unpack(a, b, {0, 1, 4, 5}); }
  static I unpackhi64(I a, I b) { return unpack(a, b, {2, 3, 6, 7}); }

  static D widen_lo(F v) { return each<D>([&](int j) { return double(v.v[j]); }); }
  static D widen_hi(F v) { return each<D>([&](int j) { return double(v.v[W / 2 + j]); }); }
  static H narrow(D v) { return each<H>([&](int j) { return float(v.v[j]); }); }
  static F join(H lo, H hi) { return each<F>([&](int j) { return j < W / 2 ? lo.v[j] : hi.v[j - W / 2]; }); }
  static D set1d(double a) { return each<D>([&](int) { return a; }); }
  static D subd(D a, D b) { return each<D>([&](int j) { return a.v[j] - b.v[j]; }); }
  static D muld(D a, D b) { return each<D>([&](int j) { return a.v[j] * b.v[j]; }); }
  static D fmadd(D a, D b, D c) { return each<D>([&](int j) { return std::fma(a.v[j], b.v[j], c.v[j]); }); }
  static D fmsub(D a, D b, D c) { return each<D>([&](int j) { return std::fma(a.v[j], b.v[j], -c.v[j]); }); }
  static L bits_d(D v) {
    L out;
    std::memcpy(out.v, v.v, sizeof out.v);
    return out;
  }
  static D from_bits(L v) {
    D out;
    std::memcpy(out.v, v.v, sizeof out.v);
    return out;
  }
  static L add64(L a, L b) { return each<L>([&](int j) { return a.v[j] + b.v[j]; }); }
  template <int N>
  static L shl64(L a) { return each<L>([&](int j) { return a.v[j] << N; }); }
  static L exp2_lookup(L k) { return each<L>([&](int j) { return kExp2Table[k.v[j] & 31]; }); }
};

}  // namespace

template <int W>
void key_scores_portable(float* out, std::ptrdiff_t out_stride, const float* q,
                         std::ptrdiff_t q_stride, int queries, const float* keys, int count, int n,
                         float scale) {
  key_scores_simd<Portable<W>>(out, out_stride, q, q_stride, queries, keys, count, n, scale);
}
template <int W>
void weighted_sums_portable(float* out, std::ptrdiff_t out_stride, const float* w,
                            std::ptrdiff_t w_stride, int queries, const float* rows,
                            std::ptrdiff_t stride, int count, int n) {
  weighted_sums_simd<Portable<W>>(out, out_stride, w, w_stride, queries, rows, stride, count, n);
}
template <int W>
void expf_elements_portable(float* y, const float* x, int n) {
  expf_elements_simd<Portable<W>>(y, x, n);
}
template <int W>
void interleave_groups_q8_0_portable(uint8_t* dst, const void* src, int groups, int nb) {
  interleave_groups_simd<Portable<W>>(dst, static_cast<const BlockQ8_0*>(src), groups, nb);
}
template <int W>
void interleave_groups_q4_0_portable(uint8_t* dst, const void* src, int groups, int nb) {
  interleave_groups_simd<Portable<W>>(dst, static_cast<const BlockQ4_0*>(src), groups, nb);
}

#define TROUPE_PORTABLE_WIDTH(W)                                                                  \
  template void key_scores_portable<W>(float*, std::ptrdiff_t, const float*, std::ptrdiff_t, int, \
                                       const float*, int, int, float);                            \
  template void weighted_sums_portable<W>(float*, std::ptrdiff_t, const float*, std::ptrdiff_t,   \
                                          int, const float*, std::ptrdiff_t, int, int);           \
  template void expf_elements_portable<W>(float*, const float*, int);                             \
  template void interleave_groups_q8_0_portable<W>(uint8_t*, const void*, int, int);         \
  template void interleave_groups_q4_0_portable<W>(uint8_t*, const void*, int, int);
TROUPE_PORTABLE_WIDTH(8)
TROUPE_PORTABLE_WIDTH(16)
#undef TROUPE_PORTABLE_WIDTH

}  // namespace troupe::kernels::detail
