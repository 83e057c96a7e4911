// The 256-bit Q8_0 / Q4_0 matvec, for two instruction sets: AVX2 (matvec_avx2.cpp, Vnni =
// false) and AVX2 with AVX-VNNI (matvec_avxvnni.cpp, Vnni = true). Included by those two files
// only, each compiled with its own flags; everything here has internal linkage, so each gets its
// own copy (matvec_impl.hpp says why nothing inline may be shared between such files).
#pragma once

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

// ---- ggml Q8_0 / Q4_0 against Q8_0 x ----
//
// Four rows at a time, two blocks a step (the int sums of the 4 x 2 blocks reduced together), one
// block in the last step when the count is odd. x's side (quants, Q4_0's correction, scales) is
// prepared once per call for up to 8192 columns (longer rows go in column chunks, each row's sum
// carried over in y). Each block's int sum is exact and the float part is the reference's, row by
// row and block by block: sum += (float)isum * (d_w * d_x), so results are bit-identical to
// matvec_q8_0_ref / matvec_q4_0_ref, whatever the row range, the thread split or the alignment.
// The last r1 - r0 mod 4 rows run the same code with a row stride of 0 (four copies of one row).
// With AVX-VNNI the int8 products are vpdpbusd's, on unsigned quants (Q8_0: q + 128; Q4_0: the
// nibble, q + 8), the offset's share taken off each block sum at the end (XPair::start). One
// thread, in L2, n = 5632 (Emerald Rapids, 2026-12-06, both in one driver, alternating): Q4_0
// 19.3 -> 23.1 GB/s, Q8_0 28.9 -> 34.2.

// The x side of blocks b, b+1 (block b+1 zero when there is none), shared by all rows.
struct XPair {
  __m256i lo, hi;  // Q8_0: the quants of b, of b+1. Q4_0: quants 0-15 of b | of b+1, and 16-31.
  __m256i corr;    // Q4_0: -8 * (sums of x quant pairs), int16 (see q4_0_step)
  __m256 dx;       // {dx[b] x4, dx[b+1] x4}
  __m256i start;   // AVX-VNNI: {-offset * (sum of b's quants) x4, the same for b+1}, int32
};

constexpr int64_t kChunkBlocks = 256;  // x prepared for 8192 columns at a time: 20 KiB of stack

template <bool Q4, bool Vnni>
void prepare_x(XPair* xp, const BlockQ8_0* x, int64_t nb) {
  for (int64_t b = 0; b < nb; b += 2) {
    const bool two = b + 1 < nb;
    const __m128i zero = _mm_setzero_si128();
    const __m128i a0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs));
    const __m128i a1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs + 16));
    const __m128i b0 = two ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b + 1].qs)) : zero;
    const __m128i b1 =
        two ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b + 1].qs + 16)) : zero;
    XPair& p = xp[b / 2];
    if constexpr (Q4) {
      p.lo = _mm256_set_m128i(b0, a0);
      p.hi = _mm256_set_m128i(b1, a1);
      const __m256i ones8 = _mm256_set1_epi8(1);
      const __m256i xsum =
          _mm256_add_epi16(_mm256_maddubs_epi16(ones8, p.lo), _mm256_maddubs_epi16(ones8, p.hi));
      p.corr = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(xsum, 3));
    } else {
      p.lo = _mm256_set_m128i(a1, a0);
      p.hi = _mm256_set_m128i(b1, b0);
      p.corr = _mm256_setzero_si256();
    }
    const short d1 = two ? static_cast<short>(x[b + 1].d) : short{0};
    const __m128i d = _mm_unpacklo_epi64(_mm_set1_epi16(static_cast<short>(x[b].d)), _mm_set1_epi16(d1));
    p.dx = _mm256_cvtph_ps(d);
    if constexpr (Vnni) {
      XBlockSum s[2] = {};  // block b+1's start stays 0 without it
      sum_x_blocks_ref(s, x + b, two ? 2 : 1, Q4 ? 8 : 128);
      p.start = _mm256_setr_epi32(s[0].start, s[0].start, s[0].start, s[0].start, s[1].start,
                                  s[1].start, s[1].start, s[1].start);
    }
  }
}

// {d of rows 0-3 in block b, of rows 0-3 in block b+1} (block b+1's zero with One): 32-bit loads
// (the scale and two quant bytes, inside the block) and a tree of unpacks.
template <bool One, typename Block>
__m256 w_scales(const Block* w, int64_t stride) {
  __m128i d[2][4];
  for (int k = 0; k < 2; k++) {
    for (int r = 0; r < 4; r++) {
      d[k][r] = One && k == 1 ? _mm_setzero_si128() : _mm_loadu_si32(&w[r * stride + k].d);
    }
  }
  const __m128i b0 =
      _mm_unpacklo_epi32(_mm_unpacklo_epi16(d[0][0], d[0][1]), _mm_unpacklo_epi16(d[0][2], d[0][3]));
  const __m128i b1 =
      _mm_unpacklo_epi32(_mm_unpacklo_epi16(d[1][0], d[1][1]), _mm_unpacklo_epi16(d[1][2], d[1][3]));
  return _mm256_cvtph_ps(_mm_unpacklo_epi64(b0, b1));
}

// val += (float)isum * (d_w * d_x) for block b (low half of isum, dw, dx), then block b+1.
template <bool One>
__m128 scale_add(__m128 val, __m256i isum, __m256 dw, __m256 dx) {
  const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, dx));
  val = _mm_add_ps(val, _mm256_castps256_ps128(f));
  if constexpr (!One) val = _mm_add_ps(val, _mm256_extractf128_ps(f, 1));
  return val;
}

// Rows a..d, each {block b: 4 lanes | block b+1: 4 lanes} -> {a, b, c, d of block b | of b+1}.
__m256i hsum4_pairs(__m256i a, __m256i b, __m256i c, __m256i d) {
  return _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
}

// Exact int8 dot of 32 bytes into 8 int32 lanes.
// AVX2: maddubs(|w|, x with w's sign) pairs, then madd by ones. |w| is read unsigned, so w = -128
// works; negating x is wrong only for x = -128, which Q8_0's quantize_row never gives (|q| <= 127,
// the x precondition). Pair sums are at most 2 * 128 * 127 = 32512: no int16 saturation.
// AVX-VNNI: vpdpbusd on the quants made unsigned (q ^ 0x80 = q + 128), 4 products a lane, no
// saturation; the 128 * sum(x) this adds comes off once a block (xp.start).
template <bool Vnni>
__m256i dot(__m256i w, __m256i x) {
  if constexpr (Vnni) {
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
    return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), _mm256_xor_si256(w, bias), x);
  } else {
    const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
  }
}

__m256i load32(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
__m128i load16(const void* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

template <bool One, bool Vnni>
[[gnu::always_inline]] inline __m128 q8_0_step(__m128 val, const BlockQ8_0* w, int64_t stride,
                                                const XPair& xp) {
  __m256i acc[4];
#pragma GCC unroll 4
  for (int r = 0; r < 4; r++) {
    const BlockQ8_0* wr = w + r * stride;
    // 68 bytes a step: two prefetches keep every 64-byte line covered.
    _mm_prefetch(ahead(wr, 4 * stride * 34), _MM_HINT_T1);
    _mm_prefetch(ahead(wr, 4 * stride * 34 + 64), _MM_HINT_T1);
    const __m256i s0 = dot<Vnni>(load32(wr[0].qs), xp.lo);
    const __m256i s1 = One ? _mm256_setzero_si256() : dot<Vnni>(load32(wr[1].qs), xp.hi);
    // {s0 lanes 0-3 + 4-7 | s1 lanes 4-7 + 0-3}
    acc[r] = _mm256_add_epi32(_mm256_blend_epi32(s0, s1, 0xF0),
                              _mm256_permute2x128_si256(s0, s1, 0x21));
  }
  __m256i isum = hsum4_pairs(acc[0], acc[1], acc[2], acc[3]);
  if constexpr (Vnni) isum = _mm256_add_epi32(isum, xp.start);
  return scale_add<One>(val, isum, w_scales<One>(w, stride), xp.dx);
}

// Q4_0: nibbles (0..15, unsigned) times x (signed) with maddubs, exact for every x (pair sums
// <= 2 * 15 * 128), minus 8 * sum(x): that correction is an int16 vector per block pair shared by
// the rows (-8 * pair sums of x), added before the widening (|lane| <= 2 * 3840 + 4096, no
// overflow). Layout: {block b | block b+1} of 16 bytes each, low nibbles against x[0..15], high
// against x[16..31] of the same block. AVX-VNNI: vpdpbusd of the nibbles, the 8 * sum(x) off at
// the end (xp.start).
template <bool One, bool Vnni>
[[gnu::always_inline]] inline __m128 q4_0_step(__m128 val, const BlockQ4_0* w, int64_t stride,
                                                const XPair& xp) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256i acc[4];
#pragma GCC unroll 4
  for (int r = 0; r < 4; r++) {
    const BlockQ4_0* wr = w + r * stride;
    // 36 bytes a step; eight rows ahead, into L2 (matvec_avx512.cpp, q8_rows4, says why).
    _mm_prefetch(ahead(wr, 8 * stride * 18), _MM_HINT_T1);
    const __m256i v0 = _mm256_castsi128_si256(load16(wr[0].qs));
    const __m256i v = One ? _mm256_zextsi128_si256(load16(wr[0].qs))
                          : _mm256_inserti128_si256(v0, load16(wr[1].qs), 1);
    const __m256i lo = _mm256_and_si256(v, m4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if constexpr (Vnni) {
      acc[r] = _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), lo, xp.lo),
                                       hi, xp.hi);
    } else {
      const __m256i p = _mm256_add_epi16(
          _mm256_add_epi16(_mm256_maddubs_epi16(lo, xp.lo), _mm256_maddubs_epi16(hi, xp.hi)),
          xp.corr);
      acc[r] = _mm256_madd_epi16(p, _mm256_set1_epi16(1));
    }
  }
  __m256i isum = hsum4_pairs(acc[0], acc[1], acc[2], acc[3]);
  if constexpr (Vnni) isum = _mm256_add_epi32(isum, xp.start);
  return scale_add<One>(val, isum, w_scales<One>(w, stride), xp.dx);
}

// Rows w, w + stride, w + 2 stride, w + 3 stride (in blocks), blocks [0, nb) of them, adding to
// val.
template <typename Block, bool Vnni>
__m128 blocks_rows4(__m128 val, const Block* w, int64_t stride, const XPair* xp, int64_t nb) {
  int64_t b = 0;
  constexpr bool q4 = sizeof(Block) == sizeof(BlockQ4_0);
  for (; b + 2 <= nb; b += 2) {
    if constexpr (q4) val = q4_0_step<false, Vnni>(val, w + b, stride, xp[b / 2]);
    else val = q8_0_step<false, Vnni>(val, w + b, stride, xp[b / 2]);
  }
  if (b < nb) {
    if constexpr (q4) val = q4_0_step<true, Vnni>(val, w + b, stride, xp[b / 2]);
    else val = q8_0_step<true, Vnni>(val, w + b, stride, xp[b / 2]);
  }
  return val;
}

template <typename Block, bool Q4, bool Vnni>
void blocks_matvec(float* y, const Block* w, const BlockQ8_0* x, int n, int r0, int r1) {
  const int64_t nb = n / 32;
  XPair xp[kChunkBlocks / 2];
  for (int64_t c0 = 0; c0 < nb; c0 += kChunkBlocks) {  // the chunk's blocks: [c0, c0 + cb)
    const int64_t cb = nb - c0 < kChunkBlocks ? nb - c0 : kChunkBlocks;
    prepare_x<Q4, Vnni>(xp, x + c0, cb);
    int i = r0;
    for (; i + 4 <= r1; i += 4) {
      const __m128 val = c0 == 0 ? _mm_setzero_ps() : _mm_loadu_ps(y + i);
      _mm_storeu_ps(y + i, blocks_rows4<Block, Vnni>(val, w + i * nb + c0, nb, xp, cb));
    }
    for (; i < r1; i++) {
      const __m128 val = c0 == 0 ? _mm_setzero_ps() : _mm_set1_ps(y[i]);
      y[i] = _mm_cvtss_f32(blocks_rows4<Block, Vnni>(val, w + i * nb + c0, 0, xp, cb));
    }
  }
}

}  // namespace

}  // namespace troupe::kernels::detail
