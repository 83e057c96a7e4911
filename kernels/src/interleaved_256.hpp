// The 256-bit batched kernel over interleaved Q8_0 / Q4_0 blocks, for two instruction sets:
// AVX2 (interleaved_avx2.cpp, Vnni = false) and AVX2 with AVX-VNNI (interleaved_avxvnni.cpp,
// Vnni = true). Included by those two files only, each compiled with its own flags; everything
// here has internal linkage, so each gets its own copy (matvec_impl.hpp says why nothing inline
// may be shared between such files).
//
// A ymm holds 8 of a group's 16 rows (lane r: row r's 4 bytes of a piece), so each group is swept
// twice, rows 0-7 and rows 8-15, each sweep over all blocks with up to 4 tokens. Per lane the sums
// are exact, so the float part, the reference's sum += (float)isum * (d_w * d_x) block by block,
// gives matvec_q8_0_ref's / matvec_q4_0_ref's floats bit for bit.
//
// AVX2 multiplies bytes with vpmaddubsw (unsigned by signed, adjacent pairs summed into int16)
// and vpmaddwd against ones (int16 pairs into int32):
// - Q4_0: the nibbles (0-15, the quant + 8) against x's quants: a pair is at most 2 * 15 * 127,
//   so all 8 pieces of a block sum in int16 without saturating (16 products, at most 30480)
//   before one vpmaddwd; the sum starts at -8 * (sum of x's quants), as in the AVX-512 kernel.
// - Q8_0: the layout's unsigned quants (q + 128) times signed x could reach 2 * 255 * 127 in a
//   pair and saturate, so the quants are made signed again and multiplied as |q| by x with q's
//   sign (vpsignb): at most 2 * 128 * 127 a pair, exact; with signed quants no offset comes off
//   (the x sums' start is not used).
// AVX-VNNI's vpdpbusd adds 4 unsigned-by-signed byte products straight into int32, without
// saturation: both types multiply the layout's unsigned quants as they are, the sum starting at
// -offset * (sum of x's quants) (the x sums' start), as in the AVX-512 kernel. Two chains a
// token, as there: a block's 8 dot products in one chain would wait on vpdpbusd's latency.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

namespace {

constexpr int kTokens = 4;  // tokens a sweep: their 4 sums, 8 pieces and temporaries in 16 ymm

__m256i x_piece(const BlockQ8_0& x, int k) {
  int32_t p;
  std::memcpy(&p, x.qs + 4 * k, 4);
  return _mm256_set1_epi32(p);
}

// One half-group of one block: pieces 0-7 of 8 rows, as the block sums below take them.
template <bool Q4, bool Vnni>
[[gnu::always_inline]] inline void load_half(__m256i v[8], const uint8_t* q, int half) {
  if constexpr (Q4) {
    // Piece k's bytes hold values 4k.. (low nibbles) and 16 + 4k.. (high): pieces k and 4 + k.
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int k = 0; k < 4; k++) {
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * k + 32 * half));
      v[k] = _mm256_and_si256(b, m4);
      v[4 + k] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
    }
  } else {
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
    for (int k = 0; k < 8; k++) {
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * k + 32 * half));
      v[k] = Vnni ? b : _mm256_xor_si256(b, bias);  // AVX2: the quant itself, signed
    }
  }
}

// 8 rows' exact block sums against one token's block.
template <bool Q4, bool Vnni>
[[gnu::always_inline]] inline __m256i block_sums(const __m256i v[8], const BlockQ8_0& x,
                                                 int32_t start) {
  if constexpr (Vnni) {
    __m256i a = _mm256_set1_epi32(start), b = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
      a = _mm256_dpbusd_avx_epi32(a, v[2 * k], x_piece(x, 2 * k));
      b = _mm256_dpbusd_avx_epi32(b, v[2 * k + 1], x_piece(x, 2 * k + 1));
    }
    return _mm256_add_epi32(a, b);
  } else if constexpr (Q4) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i s = _mm256_maddubs_epi16(v[0], x_piece(x, 0));
    for (int k = 1; k < 8; k++) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(v[k], x_piece(x, k)));
    return _mm256_add_epi32(_mm256_set1_epi32(start), _mm256_madd_epi16(s, ones));
  } else {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i s = _mm256_setzero_si256();
    for (int k = 0; k < 8; k++) {
      const __m256i signed_x = _mm256_sign_epi8(x_piece(x, k), v[k]);
      const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(v[k]), signed_x);
      s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones));
    }
    return s;
  }
}

// Group layout (kernels.hpp): nb blocks of quants, then nb x 16 scales.
template <bool Q4>
struct Layout {
  static constexpr int64_t kQuants = Q4 ? int64_t(kQuantsQ4_0x16) : int64_t(kQuantsQ8_0x16);
  const uint8_t* w;
  int64_t nb;
  const uint8_t* group(int g) const { return w + g * nb * (kQuants + int64_t(kScalesX16)); }
};

// T tokens against rows [r0, r1), groups of 16, each swept as two halves of 8 rows.
template <bool Q4, bool Vnni, int T>
void x16_tokens(float* y, int64_t ldy, const Layout<Q4>& L, const BlockQ8_0* x, const XBlockSum* xs,
                int64_t ldx, int r0, int r1) {
  for (int g = r0 / kInterleave; g * kInterleave < r1; g++) {
    const uint8_t* quants = L.group(g);
    const auto* scales = reinterpret_cast<const uint16_t*>(quants + L.nb * L.kQuants);
    for (int half = 0; half < 2; half++) {
      const int row0 = g * kInterleave + 8 * half;
      if (row0 >= r1) break;
      __m256 sum[T];
      for (int t = 0; t < T; t++) sum[t] = _mm256_setzero_ps();
      for (int64_t b = 0; b < L.nb; b++) {
        __m256i v[8];
        load_half<Q4, Vnni>(v, quants + b * L.kQuants, half);
        const __m256 dw = _mm256_cvtph_ps(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + b * kInterleave + 8 * half)));
        for (int t = 0; t < T; t++) {
          const XBlockSum& xb = xs[t * ldx + b];
          const __m256i isum = block_sums<Q4, Vnni>(v, x[t * ldx + b], xb.start);
          sum[t] = _mm256_add_ps(sum[t], _mm256_mul_ps(_mm256_cvtepi32_ps(isum),
                                                       _mm256_mul_ps(dw, _mm256_set1_ps(xb.d))));
        }
      }
      const int live = r1 - row0 < 8 ? r1 - row0 : 8;
      for (int t = 0; t < T; t++) {
        alignas(32) float out[8];
        _mm256_store_ps(out, sum[t]);
        std::memcpy(y + t * ldy + row0, out, sizeof(float) * std::size_t(live));
      }
    }
  }
}

template <bool Q4, bool Vnni>
void x16_matmul(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x, const XBlockSum* xs,
                int ldx, int n, int count, int r0, int r1) {
  const Layout<Q4> L{w, n / kBlock};
  for (int t0 = 0; t0 < count; t0 += kTokens) {
    float* yt = y + int64_t(t0) * ldy;
    const BlockQ8_0* xt = x + int64_t(t0) * ldx;
    const XBlockSum* st = xs + int64_t(t0) * ldx;
    switch (count - t0 < kTokens ? count - t0 : kTokens) {
      case 1: x16_tokens<Q4, Vnni, 1>(yt, ldy, L, xt, st, ldx, r0, r1); break;
      case 2: x16_tokens<Q4, Vnni, 2>(yt, ldy, L, xt, st, ldx, r0, r1); break;
      case 3: x16_tokens<Q4, Vnni, 3>(yt, ldy, L, xt, st, ldx, r0, r1); break;
      default: x16_tokens<Q4, Vnni, 4>(yt, ldy, L, xt, st, ldx, r0, r1); break;
    }
  }
}

}  // namespace

}  // namespace troupe::kernels::detail
