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

// f16 weights: as f32_rows, each 16 halves widened by vcvtph2ps (exact); the tail by a masked
// 16-bit load. 32 columns (64 bytes of each row, one prefetch) a step.
__m512 load_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <int R>
void f16_rows(float* y, const uint16_t* w, const float* x, int64_t n) {
  __m512 a[R], b[R];
  for (int r = 0; r < R; r++) a[r] = b[r] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + j), x1 = _mm512_loadu_ps(x + j + 16);
    for (int r = 0; r < R; r++) {
      _mm_prefetch(ahead(w + r * n + j, R * n * 2), _MM_HINT_T0);
      a[r] = _mm512_fmadd_ps(load_f16(w + r * n + j), x0, a[r]);
      b[r] = _mm512_fmadd_ps(load_f16(w + r * n + j + 16), x1, b[r]);
    }
  }
  if (j + 16 <= n) {
    const __m512 x0 = _mm512_loadu_ps(x + j);
    for (int r = 0; r < R; r++) a[r] = _mm512_fmadd_ps(load_f16(w + r * n + j), x0, a[r]);
    j += 16;
  }
  if (j < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - j)) - 1);
    const __m512 x0 = _mm512_maskz_loadu_ps(m, x + j);
    for (int r = 0; r < R; r++) {
      const __m512 wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + r * n + j));
      b[r] = _mm512_fmadd_ps(wv, x0, b[r]);
    }
  }
  for (int r = 0; r < R; r++) a[r] = _mm512_add_ps(a[r], b[r]);
  if constexpr (R == 4) {
    _mm_storeu_ps(y, hsum4_ps(a[0], a[1], a[2], a[3]));
  } else {
    for (int r = 0; r < R; r++) y[r] = _mm_cvtss_f32(hsum4_ps(a[r], a[r], a[r], a[r]));
  }
}

// ---- ggml Q8_0 / Q4_0 against Q8_0 x ----
//
// Four rows at a time, two blocks a step: one 64-byte vector holds the 64 quants of blocks b and
// b+1, and vpdpbusd sums them against x, 4 bytes into each int32 lane, lanes 0-7 block b, 8-15
// block b+1. Blocks are 34 (Q8_0) or 18 (Q4_0) bytes, so the quants are cut out of the loaded
// bytes with a 16-bit permute (blocks are whole words apart); the same loads give the scales.
// The last step has one block when the count is odd; its loads are masked to that block.
// The x side (its quants, the bias correction, its scales) is prepared once per call, for up to
// 8192 columns at a time (longer rows go in column chunks, each row's sum carried in y).
//
// Each block's int sum is exact and the float part is the reference's, row by row and block by
// block: sum += (float)isum * (d_w * d_x). So results are bit-identical to matvec_q8_0_ref /
// matvec_q4_0_ref, whatever the row range, thread split or alignment. The last r1 - r0 mod 4 rows
// run the same code with a row stride of 0 (four copies of one row).

// 16-bit permute indices (0-31 from the first source, 32-63 from the second).
struct Perm {
  alignas(64) uint16_t q8_pair[32];  // qs of 2 Q8_0 blocks: bytes 2-33 and 36-67
  alignas(64) uint16_t q4_pair[32];  // qs of 2 Q4_0 blocks, each twice: bytes 2-17 x2, 20-35 x2
  alignas(64) uint16_t x_scales[32];  // d of 2 Q8_0 blocks, each 4 times (words 0 and 17)
  alignas(64) uint16_t q8_scales[32];  // {d_b of a, of b, d_b+1 of a, of b} (words 0, 17)
  alignas(64) uint16_t q4_scales[32];  // the same for Q4_0 (words 0, 9)
};

constexpr Perm make_perm() {
  Perm p{};
  for (int i = 0; i < 32; i++) {
    p.q8_pair[i] = static_cast<uint16_t>(i < 16 ? i + 1 : i < 30 ? i + 2 : 32 + i - 30);
    p.q4_pair[i] = static_cast<uint16_t>(i < 16 ? 1 + i % 8 : 10 + i % 8);
    p.x_scales[i] = static_cast<uint16_t>(i >= 4 && i < 8 ? 17 : 0);
  }
  const uint16_t q8[4] = {0, 32, 17, 49}, q4[4] = {0, 32, 9, 41};
  for (int i = 0; i < 4; i++) {
    p.q8_scales[i] = q8[i];
    p.q4_scales[i] = q4[i];
  }
  return p;
}

constexpr Perm kPerm = make_perm();

__m512i perm_index(const uint16_t* p) { return _mm512_load_si512(p); }

// The x side of blocks b, b+1, shared by all rows.
struct XPair {
  __m512i q;     // their 64 quants (block b+1's zero when there is none)
  __m512i init;  // accumulator start: minus what the weights' offset adds (see the kernels)
  __m256 dx;     // {dx[b] x4, dx[b+1] x4}
};

constexpr int64_t kChunkBlocks = 256;  // x prepared for 8192 columns at a time: 24 KiB of stack

// `offset` holds, per byte, what the kernel adds to each weight quant before vpdpbusd (which
// takes those unsigned); init = -sum(offset * x) per int32 lane takes it off again.
void prepare_x(XPair* xp, const BlockQ8_0* x, int64_t nb, __m512i offset) {
  for (int64_t b = 0; b < nb; b += 2) {
    const bool one = b + 1 == nb;
    const __m512i v1 = one ? _mm512_maskz_loadu_epi8((1ull << 34) - 1, x + b) : _mm512_loadu_si512(x + b);
    const __m512i v2 = one ? _mm512_setzero_si512()
                           : _mm512_maskz_loadu_epi16(0x3, reinterpret_cast<const char*>(x + b) + 64);
    XPair& p = xp[b / 2];
    p.q = _mm512_permutex2var_epi16(v1, perm_index(kPerm.q8_pair), v2);
    p.init = _mm512_sub_epi32(_mm512_setzero_si512(),
                              _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, p.q));
    p.dx = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi16(perm_index(kPerm.x_scales), v1)));
  }
}

// {d of rows 0-3 in block b, of rows 0-3 in block b+1} from the rows' loaded bytes.
__m256 w_scales(const __m512i v[4], const uint16_t* idx) {
  const __m512i i = perm_index(idx);
  const __m128i t01 = _mm512_castsi512_si128(_mm512_permutex2var_epi16(v[0], i, v[1]));
  const __m128i t23 = _mm512_castsi512_si128(_mm512_permutex2var_epi16(v[2], i, v[3]));
  return _mm256_cvtph_ps(_mm_unpacklo_epi32(t01, t23));
}

// Rows a..d, lanes 0-7 block b, 8-15 block b+1 -> {a, b, c, d of block b | of b+1}. With
// HighX16, lanes 4-7 and 12-15 hold 16 times their value (Q4_0's high nibbles, unshifted).
template <bool HighX16>
__m256i hsum4_pairs(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  // Per 128-bit lane L0..L3: {a, b, c, d} summed over that lane.
  __m512i abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
  if constexpr (HighX16) abcd = _mm512_mask_srai_epi32(abcd, 0xF0F0, abcd, 4);  // exact: multiples of 16
  const __m512i t = _mm512_shuffle_i32x4(abcd, abcd, _MM_SHUFFLE(3, 1, 2, 0));  // L0, L2, L1, L3
  return _mm256_add_epi32(_mm512_castsi512_si256(t), _mm512_extracti64x4_epi64(t, 1));
}

// val += (float)isum * (d_w * d_x) for block b (low halves), then block b+1.
template <bool One>
__m128 scale_add_pairs(__m128 val, __m256i isum, __m256 dw, __m256 dx) {
  const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, dx));
  val = _mm_add_ps(val, _mm256_castps256_ps128(f));
  if constexpr (!One) val = _mm_add_ps(val, _mm256_extractf128_ps(f, 1));
  return val;
}

// Q8_0: weight bytes offset to unsigned (w ^ 0x80 = w + 128); init takes 128 * sum(x) off. Exact
// for every int8 (see q8_rows4).

template <bool One>
[[gnu::always_inline]] inline __m128 q8_0_step(__m128 val, const BlockQ8_0* w, int64_t stride, const XPair& xp) {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i idx = perm_index(kPerm.q8_pair);
  __m512i v[4], acc[4];
  for (int r = 0; r < 4; r++) {
    const BlockQ8_0* wr = w + r * stride;
    // 68 bytes a step: two prefetches keep every 64-byte line covered.
    _mm_prefetch(ahead(wr, 4 * stride * 34), _MM_HINT_T0);
    _mm_prefetch(ahead(wr, 4 * stride * 34 + 64), _MM_HINT_T0);
    v[r] = One ? _mm512_maskz_loadu_epi8((1ull << 34) - 1, wr) : _mm512_loadu_si512(wr);
    const __m512i v2 = One ? _mm512_setzero_si512()
                           : _mm512_maskz_loadu_epi16(0x3, reinterpret_cast<const char*>(wr) + 64);
    const __m512i q = _mm512_xor_si512(_mm512_permutex2var_epi16(v[r], idx, v2), bias);
    acc[r] = _mm512_dpbusd_epi32(xp.init, q, xp.q);
  }
  const __m256i isum = hsum4_pairs<false>(acc[0], acc[1], acc[2], acc[3]);
  return scale_add_pairs<One>(val, isum, w_scales(v, kPerm.q8_scales), xp.dx);
}

// Q4_0: each block's 16 bytes placed twice, {b, b, b+1, b+1}, then masked to the low nibbles in
// the first copy and the high nibbles (times 16, unshifted) in the second: unsigned quants
// against x's natural order. init takes 8 * sum(x) off (128 * sum(x) in the high-nibble lanes),
// and the high-nibble lane sums are divided by 16 in the reduction.

template <bool One>
[[gnu::always_inline]] inline __m128 q4_0_step(__m128 val, const BlockQ4_0* w, int64_t stride, const XPair& xp) {
  const __m512i nibbles = _mm512_mask_blend_epi32(0xF0F0, _mm512_set1_epi8(0x0F),
                                                  _mm512_set1_epi8(static_cast<char>(0xF0)));
  const __m512i idx = perm_index(kPerm.q4_pair);
  __m512i v[4], acc[4];
  for (int r = 0; r < 4; r++) {
    const BlockQ4_0* wr = w + r * stride;
    _mm_prefetch(ahead(wr, 4 * stride * 18), _MM_HINT_T0);  // 36 bytes a step
    v[r] = _mm512_maskz_loadu_epi8(One ? (1ull << 18) - 1 : (1ull << 36) - 1, wr);
    const __m512i q = _mm512_and_si512(_mm512_permutexvar_epi16(idx, v[r]), nibbles);
    acc[r] = _mm512_dpbusd_epi32(xp.init, q, xp.q);
  }
  const __m256i isum = hsum4_pairs<true>(acc[0], acc[1], acc[2], acc[3]);
  return scale_add_pairs<One>(val, isum, w_scales(v, kPerm.q4_scales), xp.dx);
}

// Rows w, w + stride, w + 2 stride, w + 3 stride (in blocks), blocks [0, nb) of them, adding to val.
template <typename Block, __m128 (*Step2)(__m128, const Block*, int64_t, const XPair&),
          __m128 (*Step1)(__m128, const Block*, int64_t, const XPair&)>
__m128 blocks_rows4(__m128 val, const Block* w, int64_t stride, const XPair* xp, int64_t nb) {
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) val = Step2(val, w + b, stride, xp[b / 2]);
  if (b < nb) val = Step1(val, w + b, stride, xp[b / 2]);
  return val;
}

template <typename Block, __m128 (*Step2)(__m128, const Block*, int64_t, const XPair&),
          __m128 (*Step1)(__m128, const Block*, int64_t, const XPair&)>
void blocks_matvec(float* y, const Block* w, const BlockQ8_0* x, int n, int r0, int r1, __m512i offset) {
  const int64_t nb = n / 32;
  XPair xp[kChunkBlocks / 2];
  for (int64_t c0 = 0; c0 < nb; c0 += kChunkBlocks) {  // the chunk's blocks: [c0, c0 + cb)
    const int64_t cb = nb - c0 < kChunkBlocks ? nb - c0 : kChunkBlocks;
    prepare_x(xp, x + c0, cb, offset);
    int i = r0;
    for (; i + 4 <= r1; i += 4) {
      const __m128 val = c0 == 0 ? _mm_setzero_ps() : _mm_loadu_ps(y + i);
      _mm_storeu_ps(y + i, blocks_rows4<Block, Step2, Step1>(val, w + i * nb + c0, nb, xp, cb));
    }
    for (; i < r1; i++) {
      const __m128 val = c0 == 0 ? _mm_setzero_ps() : _mm_set1_ps(y[i]);
      y[i] = _mm_cvtss_f32(blocks_rows4<Block, Step2, Step1>(val, w + i * nb + c0, 0, xp, cb));
    }
  }
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

void matvec_f16_avx512(float* y, const uint16_t* w, const float* x, int n, int r0, int r1) {
  int i = r0;
  for (; i + 4 <= r1; i += 4) f16_rows<4>(y + i, w + static_cast<int64_t>(i) * n, x, n);
  for (; i < r1; i++) f16_rows<1>(y + i, w + static_cast<int64_t>(i) * n, x, n);
}

void matvec_q8_0_avx512(float* y, const BlockQ8_0* w, const BlockQ8_0* x, int n, int r0, int r1) {
  blocks_matvec<BlockQ8_0, q8_0_step<false>, q8_0_step<true>>(y, w, x, n, r0, r1,
                                                             _mm512_set1_epi8(static_cast<char>(0x80)));
}

void matvec_q4_0_avx512(float* y, const BlockQ4_0* w, const BlockQ8_0* x, int n, int r0, int r1) {
  // 8 per quant in the low-nibble lanes, 8 * 16 in the high-nibble ones (128-bit lanes 1, 3).
  const __m512i offset = _mm512_mask_blend_epi32(0xF0F0, _mm512_set1_epi8(8),
                                                 _mm512_set1_epi8(static_cast<char>(128)));
  blocks_matvec<BlockQ4_0, q4_0_step<false>, q4_0_step<true>>(y, w, x, n, r0, r1, offset);
}

}  // namespace troupe::kernels::detail
