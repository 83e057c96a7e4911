// AVX-512 VNNI batched products over interleaved Q8_0 / Q4_0 blocks (kernels.hpp). Compiled with
// the flags of matvec_avx512.cpp and only called when the CPU has them.
//
// A group of 16 rows is one accumulator: lane r is row r. For block b, vpdpbusd multiplies a
// 64-byte piece vector (4 unsigned quants of each row) by 4 bytes of x broadcast to every lane,
// so after the block's pieces lane r holds row r's exact int32 block sum: no sums across lanes,
// no shuffles. The offset that made the quants unsigned (Q8_0: +128; Q4_0: the nibble is q + 8)
// comes off by starting the sum at -offset * (sum of x's quants), which the caller computes once
// per token (sum_x_blocks_*, also here) for all of a product's tiles. The float part is the
// reference's, lane by lane: sum += (float)isum * (d_w * d_x), block by block in order, so every
// row's result is matvec_q8_0_ref's / matvec_q4_0_ref's bit for bit.
//
// A block's pieces are loaded (and Q4_0's nibbles split) once for up to 8 tokens; each token's
// sums and float part are those of one token alone.
//
// Also here: the x sums. (The copy of ggml blocks into that layout: loops_avx512.cpp.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

namespace {

// A prefetch address past the end of the matrix is never dereferenced; formed as an integer.
const char* ahead(const void* p, int64_t bytes) {
  return reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes));
}

constexpr int kMaxTokens = 8;  // tokens a pass in the batched kernel

// One block's weights, ready for vpdpbusd: the unsigned quants of pieces 0-7 (16 rows each).
struct Pieces {
  __m512i v[8];
};

template <bool Q4>
[[gnu::always_inline]] inline Pieces load_pieces(const uint8_t* q) {
  Pieces p;
  if constexpr (Q4) {
    // Piece k's bytes hold values 4k.. (low nibbles) and 16 + 4k.. (high): pieces k and 4 + k.
    const __m512i m4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
      const __m512i v = _mm512_loadu_si512(q + 64 * k);
      p.v[k] = _mm512_and_si512(v, m4);
      p.v[4 + k] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
  } else {
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) p.v[k] = _mm512_loadu_si512(q + 64 * k);
  }
  return p;
}

// a + the dot products of p's bytes with the 4 bytes at x broadcast to every lane, the broadcast
// folded into the instruction (GCC 12 does not fold _mm512_set1_epi32 into vpdpbusd itself).
[[gnu::always_inline]] inline __m512i dpbusd_broadcast(__m512i a, __m512i p, const int8_t* x) {
  asm("vpdpbusd %2%{1to16%}, %1, %0"  // AT&T order: source broadcast, source, accumulator
      : "+v"(a)
      : "v"(p), "m"(*reinterpret_cast<const int32_t(*)[1]>(x)));
  return a;
}

// 16 rows' exact block sums against one token's block; two chains, halving the latency.
[[gnu::always_inline]] inline __m512i block_sums(const Pieces& p, const BlockQ8_0& x, int32_t start) {
  __m512i a = _mm512_set1_epi32(start), b = _mm512_setzero_si512();
#pragma GCC unroll 4
  for (int k = 0; k < 4; k++) {
    a = dpbusd_broadcast(a, p.v[2 * k], x.qs + 8 * k);
    b = dpbusd_broadcast(b, p.v[2 * k + 1], x.qs + 8 * k + 4);
  }
  return _mm512_add_epi32(a, b);
}

// sum += (float)isum * (d_w * d_x), per lane.
[[gnu::always_inline]] inline __m512 scale_add(__m512 sum, __m512i isum, __m512 dw, float dx) {
  return _mm512_add_ps(sum, _mm512_mul_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(dx))));
}

__mmask16 rows_mask(int g, int r1) {
  const int left = r1 - g * kInterleave;
  return left >= kInterleave ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
}

// Group layout (kernels.hpp): nb blocks of quants (Quants bytes each), then nb x 16 scales.
template <bool Q4>
struct Layout {
  static constexpr int64_t kQuants = Q4 ? int64_t(kQuantsQ4_0x16) : int64_t(kQuantsQ8_0x16);
  // Weights read ahead into L2 (see matvec_avx512.cpp's q8_rows4 on L2 rather than L1): ~8 KiB.
  static constexpr int64_t kPrefetch = 8192;
  const uint8_t* w;
  int64_t nb;
  const uint8_t* quants(int g, int64_t b) const { return w + g * nb * (kQuants + 32) + b * kQuants; }
  const uint16_t* scales(int g, int64_t b) const {
    return reinterpret_cast<const uint16_t*>(w + g * nb * (kQuants + 32) + nb * kQuants) + b * 16;
  }
  static void prefetch(const uint8_t* q, const uint16_t* s, int64_t b) {
#pragma GCC unroll 8
    for (int64_t k = 0; k < kQuants; k += 64) _mm_prefetch(ahead(q, kPrefetch + k), _MM_HINT_T1);
    if (b % 2 == 0) _mm_prefetch(ahead(s, kPrefetch / 8), _MM_HINT_T1);  // 64 bytes: 2 blocks
  }
};

// T tokens (x_t = x + t * ldx blocks, their sums xs likewise) against rows [r0, r1): each
// block's pieces once for all T.
template <bool Q4, int T>
void x16_tokens(float* y, int64_t ldy, const Layout<Q4>& L, const BlockQ8_0* x, const XBlockSum* xs,
                int64_t ldx, int r0, int r1) {
  for (int g = r0 / kInterleave; g * kInterleave < r1; g++) {
    __m512 sum[T];
    for (int t = 0; t < T; t++) sum[t] = _mm512_setzero_ps();
    const uint8_t* q = L.quants(g, 0);
    const uint16_t* s = L.scales(g, 0);
    for (int64_t b = 0; b < L.nb; b++, q += L.kQuants, s += 16) {
      Layout<Q4>::prefetch(q, s, b);
      const Pieces p = load_pieces<Q4>(q);
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s)));
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) {
        const XBlockSum& xb = xs[t * ldx + b];
        sum[t] = scale_add(sum[t], block_sums(p, x[t * ldx + b], xb.start), dw, xb.d);
      }
    }
    const __mmask16 m = rows_mask(g, r1);
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy + g * kInterleave, m, sum[t]);
  }
}

template <bool Q4>
void x16_matmul(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x, const XBlockSum* xs,
                int ldx, int n, int count, int r0, int r1) {
  const Layout<Q4> L{w, n / kBlock};
  for (int t0 = 0; t0 < count; t0 += kMaxTokens) {
    float* yt = y + int64_t(t0) * ldy;
    const BlockQ8_0* xt = x + int64_t(t0) * ldx;
    const XBlockSum* st = xs + int64_t(t0) * ldx;
    switch (count - t0 < kMaxTokens ? count - t0 : kMaxTokens) {
      case 1: x16_tokens<Q4, 1>(yt, ldy, L, xt, st, ldx, r0, r1); break;
      case 2: x16_tokens<Q4, 2>(yt, ldy, L, xt, st, ldx, r0, r1); break;
      case 3: x16_tokens<Q4, 3>(yt, ldy, L, xt, st, ldx, r0, r1); break;
      case 4: x16_tokens<Q4, 4>(yt, ldy, L, xt, st, ldx, r0, r1); break;
      case 5: x16_tokens<Q4, 5>(yt, ldy, L, xt, st, ldx, r0, r1); break;
      case 6: x16_tokens<Q4, 6>(yt, ldy, L, xt, st, ldx, r0, r1); break;
      case 7: x16_tokens<Q4, 7>(yt, ldy, L, xt, st, ldx, r0, r1); break;
      default: x16_tokens<Q4, 8>(yt, ldy, L, xt, st, ldx, r0, r1); break;
    }
  }
}

}  // namespace

void matmul_q8_0x16_avx512(float* y, int ldy, const uint8_t* w, const Operand& x,
                           const XBlockSum* xs, int ldx, int n, int count, int r0, int r1) {
  const auto* xb = static_cast<const BlockQ8_0*>(x.data);
  x16_matmul<false>(y, ldy, w, xb, xs, ldx, n, count, r0, r1);
}
void matmul_q4_0x16_avx512(float* y, int ldy, const uint8_t* w, const Operand& x,
                           const XBlockSum* xs, int ldx, int n, int count, int r0, int r1) {
  const auto* xb = static_cast<const BlockQ8_0*>(x.data);
  x16_matmul<true>(y, ldy, w, xb, xs, ldx, n, count, r0, r1);
}

void sum_x_blocks_avx512(XBlockSum* out, const BlockQ8_0* x, int blocks, int offset) {
  const __m256i ones = _mm256_set1_epi8(1);
  for (int b = 0; b < blocks; b++) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    const __m256i s8 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, q);  // 8 partial sums
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    out[b] = {-offset * _mm_cvtsi128_si32(s), _cvtsh_ss(x[b].d)};
  }
}

}  // namespace troupe::kernels::detail
