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

// One row, two accumulators (two independent FMA chains), the row read front to back, each line
// also prefetched into L2 kStreamAhead bytes ahead (across row ends: a matrix's rows are one
// stream). Measured with a throwaway driver, one thread, 600 MB from DRAM, alternating:
// - Zen 4: a row at a time with no prefetch read 90-98% of a probe's GB/s (f16 and f32), four rows
//   side by side with the next four rows prefetched 77-79% (f16) and 89-90% (f32).
// - Emerald Rapids (2026-12-06): a row at a time with no prefetch 50-60% (f16) and 66-80% (f32),
//   its L2 streamer alone too far behind; with these prefetches 84-101% (f16) and 95-98% (f32),
//   4-16 KiB ahead alike (2 KiB: 77-88%).
// The last n % 16 columns use a masked load: no scalar tail, and masked-off lanes are never read.
// A row's floats depend only on that row, x and n, not on the row range or the address
// (peeling to a 64-byte boundary would make results depend on alignment, e.g. differ between
// checkpoint versions); the batched f32 kernel sums in the same order.
constexpr int64_t kStreamAhead = 8192;

float f32_row(const float* w, const float* x, int64_t n) {
  __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    _mm_prefetch(ahead(w + j, kStreamAhead), _MM_HINT_T1);
    _mm_prefetch(ahead(w + j + 16, kStreamAhead), _MM_HINT_T1);
    a = _mm512_fmadd_ps(_mm512_loadu_ps(w + j), _mm512_loadu_ps(x + j), a);
    b = _mm512_fmadd_ps(_mm512_loadu_ps(w + j + 16), _mm512_loadu_ps(x + j + 16), b);
  }
  if (j + 16 <= n) {
    a = _mm512_fmadd_ps(_mm512_loadu_ps(w + j), _mm512_loadu_ps(x + j), a);
    j += 16;
  }
  if (j < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - j)) - 1);
    b = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + j), _mm512_maskz_loadu_ps(m, x + j), b);
  }
  a = _mm512_add_ps(a, b);
  return _mm_cvtss_f32(hsum4_ps(a, a, a, a));
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
// throughput from DRAM. Every weight prefetch in this file goes to L2 (_MM_HINT_T1), not L1: a
// line on its way into L1 holds one of the core's few L1 miss buffers (24 on Zen 4) for the whole
// trip from DRAM, too few to keep ~8 KiB in flight; L2 has several times more. On the quantized
// kernels, T0 -> T1 took a 600 MB Q4_0 matvec from 11 to 28 GB/s on one Zen 4 core (stream read
// 27 GB/s), the weights then coming from L2 at the kernel's own pace.
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
        _mm_prefetch(ahead(wq + r * n + k, 4 * n), _MM_HINT_T1);
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
        _mm_prefetch(ahead(wq + r * n + k, 4 * n), _MM_HINT_T1);
        const __m512i wv = _mm512_xor_si512(_mm512_loadu_si512(wq + r * n + k), bias);
        acc[r] = _mm512_dpbusd_epi32(acc[r], wv, xv);
      }
    }
    if (k < end) {  // 32 bytes left; masked-off bytes load as 0 and add 128 * 0
      const __mmask64 m = 0xFFFFFFFFull;
      const __m512i xv = _mm512_maskz_loadu_epi8(m, xq + k);
      for (int r = 0; r < 4; r++) {
        _mm_prefetch(ahead(wq + r * n + k, 4 * n), _MM_HINT_T1);
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

// f16 weights: as f32_row, each 16 halves widened by vcvtph2ps (exact); the tail by a masked
// 16-bit load.
__m512 load_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

float f16_row(const uint16_t* w, const float* x, int64_t n) {
  __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    _mm_prefetch(ahead(w + j, kStreamAhead), _MM_HINT_T1);
    a = _mm512_fmadd_ps(load_f16(w + j), _mm512_loadu_ps(x + j), a);
    b = _mm512_fmadd_ps(load_f16(w + j + 16), _mm512_loadu_ps(x + j + 16), b);
  }
  if (j + 16 <= n) {
    a = _mm512_fmadd_ps(load_f16(w + j), _mm512_loadu_ps(x + j), a);
    j += 16;
  }
  if (j < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - j)) - 1);
    const __m512 wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + j));
    b = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + j), b);
  }
  a = _mm512_add_ps(a, b);
  return _mm_cvtss_f32(hsum4_ps(a, a, a, a));
}

// ---- ggml Q8_0 / Q4_0 against Q8_0 x ----
//
// Four rows and four blocks a step. Each row's quants of the four blocks are cut out of its loaded
// bytes with 16-bit permutes (blocks are 34 or 18 bytes, whole words apart) into two 64-byte
// vectors: quants 0-15 and 16-31 of each block, one block per 128-bit lane. Two vpdpbusd against
// x laid out the same way leave each block's sum in 4 int32 lanes, and one transposing reduction
// gives the step's 16 sums (4 rows x 4 blocks). The same loads give the weight scales. The last
// step takes the 1-3 blocks left, its loads masked to them. x's side (its quants in that layout,
// the offset correction, its scales) is prepared once per call, for up to 8192 columns at a time
// (longer rows go in column chunks, each row's sum carried over in y).
//
// vpdpbusd multiplies unsigned by signed bytes: the weight quants are made unsigned by an offset
// (Q8_0: w ^ 0x80 = w + 128; Q4_0: the nibble itself, q + 8), and the accumulators start at
// -offset * (x sum) per lane, which takes it off again. vpdpbusd does not saturate, so every block
// sum is exact for all quant values (Q8_0's -128 included).
//
// The float part is the reference's, row by row and block by block:
// sum += (float)isum * (d_w * d_x), so results are bit-identical to matvec_q8_0_ref /
// matvec_q4_0_ref, whatever the row range, thread split or alignment. The last r1 - r0 mod 4 rows
// run the same code with a row stride of 0 (four copies of one row).

// 16-bit permute indices (0-31 pick from the first source, 32-63 from the second).
struct Perm {
  alignas(64) uint16_t q4[32];         // Q4_0 quants of blocks 0-3: words 9j+1 .. 9j+8
  alignas(64) uint16_t q4_scales[32];  // {d0 of rows a, b; d1 of a, b} in words 0-3, the same
                                       // for d2, d3 in words 8-11: words 9j of either source
  alignas(64) uint16_t q8_lo[32];      // Q8_0 quants 0-15 of blocks 0-3, from bytes 0-127
  alignas(64) uint16_t q8_hi[32];      // quants 16-31 from bytes 0-127; block 3's last 8 bytes
                                       // are not there: those slots take the 4 scales instead
  alignas(64) uint16_t q8_dT[32];      // {d_j of rows 0-3} per j, from the rows' {d0-d3} in qwords
                                       // 0, 1, 4, 5
  alignas(64) uint16_t x_scales[32];   // {d_j x4} per j, from bytes 0-127
  alignas(64) uint16_t q8_scales01[32];  // {d0 of rows a, b; d1 of a, b} from bytes 0-63
  alignas(64) uint16_t q8_scales23[32];  // {d2 of a, b; d3 of a, b} from bytes 64-127
  alignas(64) uint16_t q4_cut[32];     // Q4_0 quants of blocks 0-2 from bytes 0-63: words 9j+1 ..
                                       // 9j+8 (block 3's come from a load of their own)
  alignas(64) uint16_t q4_d[32];       // word 4j + r: d_j (word 9j) of row r, from row r's bytes
};

constexpr Perm make_perm() {
  Perm p{};
  for (int i = 0; i < 32; i++) {
    const int j = i / 8, k = i % 8;  // block, word within its 8
    p.q4[i] = static_cast<uint16_t>(9 * j + 1 + k);
    p.q8_lo[i] = static_cast<uint16_t>(17 * j + 1 + k);  // byte 34j + 2 + 2k
    // byte 34j + 18 + 2k; the last 4 slots take the scales, words 0, 17, 34, 51
    p.q8_hi[i] = static_cast<uint16_t>(i < 28 ? 17 * j + 9 + k : 17 * (i - 28));
    const int qword[4] = {0, 1, 4, 5};
    p.q8_dT[i] = static_cast<uint16_t>(i < 16 ? 4 * qword[i % 4] + i / 4 : 0);
    p.x_scales[i] = static_cast<uint16_t>(i < 16 ? 17 * (i / 4) : 0);
    if (i < 24) p.q4_cut[i] = static_cast<uint16_t>(9 * j + 1 + k);
    p.q4_d[i] = static_cast<uint16_t>(i < 16 ? 9 * (i / 4) : 0);
  }
  for (int j = 0; j < 4; j++) {
    const int at = 2 * (j % 2) + 8 * (j / 2);
    p.q4_scales[at] = static_cast<uint16_t>(9 * j);
    p.q4_scales[at + 1] = static_cast<uint16_t>(32 + 9 * j);
  }
  const uint16_t s01[4] = {0, 32, 17, 49}, s23[4] = {2, 34, 19, 51};  // bytes 0, 34; 68, 102
  for (int i = 0; i < 4; i++) {
    p.q8_scales01[i] = s01[i];
    p.q8_scales23[i] = s23[i];
  }
  return p;
}

constexpr Perm kPerm = make_perm();

__m512i perm_index(const uint16_t* p) { return _mm512_load_si512(p); }

// Bytes [0, len) of p, len <= 64; masked-off bytes are not read.
__m512i load_bytes(const void* p, int64_t len) {
  return _mm512_maskz_loadu_epi8(len >= 64 ? ~0ull : (1ull << len) - 1, p);
}

// The x side of blocks b .. b+3, shared by all rows.
struct XQuad {
  __m512i lo, hi;  // quants 0-15 and 16-31 of each block, one block per 128-bit lane
  __m512i init;    // accumulator start: -offset * (sum of the lane's 8 x quants)
  __m512 dx;       // {dx[b] x4, dx[b+1] x4, dx[b+2] x4, dx[b+3] x4}
};

constexpr int64_t kChunkBlocks = 256;  // x prepared for 8192 columns at a time: 16 KiB of stack

// The quants are cut out as for Q8_0 weights (q8_0_sums), the scales with one more permute.
void prepare_x(XQuad* xq, const BlockQ8_0* x, int64_t nb, int offset) {
  const __m512i off = _mm512_set1_epi8(static_cast<char>(offset));
  for (int64_t b = 0; b < nb; b += 4) {
    const char* p = reinterpret_cast<const char*>(x + b);
    const int64_t len = 34 * (nb - b < 4 ? nb - b : 4);  // blocks past the end: zeros
    const __m512i v1 = load_bytes(p, len);
    const __m512i v2 = len > 64 ? load_bytes(p + 64, len - 64) : _mm512_setzero_si512();
    XQuad& q = xq[b / 4];
    q.lo = _mm512_permutex2var_epi16(v1, perm_index(kPerm.q8_lo), v2);
    const __m512i hi = _mm512_permutex2var_epi16(v1, perm_index(kPerm.q8_hi), v2);
    int64_t last = 0;  // block 3's quants 24-31 (bytes 128-135), or zeros without a block 3
    if (len == 136) __builtin_memcpy(&last, p + 128, 8);
    q.hi = _mm512_mask_set1_epi64(hi, 0x80, last);
    const __m512i sum =
        _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), off, q.lo), off, q.hi);
    q.init = _mm512_sub_epi32(_mm512_setzero_si512(), sum);
    const __m512i d = _mm512_permutex2var_epi16(v1, perm_index(kPerm.x_scales), v2);
    q.dx = _mm512_cvtph_ps(_mm512_castsi512_si256(d));
  }
}

// Rows a..d, each with one block per 128-bit lane -> per 128-bit lane {a, b, c, d} summed over it.
__m512i hsum4_blocks(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
}

// From {d_j of rows a, b for blocks j} and the same for rows c, d (words 0-7 each):
// per 128-bit lane j {d_j of a, b, c, d}, as floats.
__m512 scales4(__m128i ab01, __m128i cd01, __m128i ab23, __m128i cd23) {
  const __m128i s01 = _mm_unpacklo_epi32(ab01, cd01);
  const __m128i s23 = _mm_unpacklo_epi32(ab23, cd23);
  return _mm512_cvtph_ps(_mm256_set_m128i(s23, s01));
}

// A step's 16 block sums and weight scales: per 128-bit lane j, block j of rows 0-3.
struct Sums {
  __m512i isum;
  __m512 dw;
};

// val += (float)isum * (d_w * d_x) for blocks 0 .. K-1 (128-bit lanes) in order.
template <int K>
__m128 scale_add_blocks(__m128 val, Sums s, __m512 dx) {
  const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(s.isum), _mm512_mul_ps(s.dw, dx));
  val = _mm_add_ps(val, _mm512_castps512_ps128(f));
  if constexpr (K > 1) val = _mm_add_ps(val, _mm512_extractf32x4_ps(f, 1));
  if constexpr (K > 2) val = _mm_add_ps(val, _mm512_extractf32x4_ps(f, 2));
  if constexpr (K > 3) val = _mm_add_ps(val, _mm512_extractf32x4_ps(f, 3));
  return val;
}

// v + f's block terms in block order, 128-bit lane g of v taking lane g of each f: f[g] holds, in
// its lane j, block j's terms of lane g's four values (rows, or a token's rows). Transposing the
// 4 x 4 lanes makes each block one vector, so per value the adds are scale_add_blocks<4>'s.
[[gnu::always_inline]] inline __m512 add_blocks_transposed(__m512 v, const __m512 f[4]) {
  const __m512 a = _mm512_shuffle_f32x4(f[0], f[1], _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 c = _mm512_shuffle_f32x4(f[2], f[3], _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 d = _mm512_shuffle_f32x4(f[0], f[1], _MM_SHUFFLE(3, 2, 3, 2));
  const __m512 e = _mm512_shuffle_f32x4(f[2], f[3], _MM_SHUFFLE(3, 2, 3, 2));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(a, c, _MM_SHUFFLE(2, 0, 2, 0)));  // block 0
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(a, c, _MM_SHUFFLE(3, 1, 3, 1)));  // block 1
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(d, e, _MM_SHUFFLE(2, 0, 2, 0)));  // block 2
  return _mm512_add_ps(v, _mm512_shuffle_f32x4(d, e, _MM_SHUFFLE(3, 1, 3, 1)));  // block 3
}

// Q8_0, K (1-4) blocks from each row w + r * stride: bytes 0-127 in two vectors (the fewer
// 64-byte loads the better: unaligned ones each touch two cache lines), the last 8 of 136 apart.
// Rows: the step's first byte in each of the four rows; pf: how far ahead to prefetch them.
template <int K>
[[gnu::always_inline]] inline Sums q8_0_sums(const char* const (&rows)[4], int64_t pf,
                                             const XQuad& xq) {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i ilo = perm_index(kPerm.q8_lo), ihi = perm_index(kPerm.q8_hi);
  constexpr int64_t len = 34 * K;  // bytes of the step
  __m512i v1[4], v2[4], hd[4], acc[4];
#pragma GCC unroll 4
  for (int r = 0; r < 4; r++) {
    const char* wr = rows[r];
    // 136 bytes a step: three prefetches keep every 64-byte line covered.
    _mm_prefetch(ahead(wr, pf), _MM_HINT_T1);
    _mm_prefetch(ahead(wr, pf + 64), _MM_HINT_T1);
    _mm_prefetch(ahead(wr, pf + 128), _MM_HINT_T1);
    if constexpr (K == 4) {
      v1[r] = _mm512_loadu_si512(wr);
      v2[r] = _mm512_loadu_si512(wr + 64);
    } else {
      v1[r] = load_bytes(wr, len);
      v2[r] = len > 64 ? load_bytes(wr + 64, len - 64) : _mm512_setzero_si512();
    }
    // Past the last block the permutes pick zeros: 0 ^ 0x80 = 128 against x = 0 there.
    const __m512i lo = _mm512_permutex2var_epi16(v1[r], ilo, v2[r]);
    hd[r] = _mm512_permutex2var_epi16(v1[r], ihi, v2[r]);  // its last 8 bytes: the 4 scales
    __m512i hi = hd[r];
    if constexpr (K == 4) {  // block 3's quants 24-31: bytes 128-135
      int64_t last;
      __builtin_memcpy(&last, wr + 128, 8);
      hi = _mm512_mask_set1_epi64(hi, 0x80, last);
    }  // (with K < 4, the scales there meet x = 0: block 3 is not there)
    acc[r] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(xq.init, _mm512_xor_si512(lo, bias), xq.lo),
                                 _mm512_xor_si512(hi, bias), xq.hi);
  }
  if constexpr (K == 4) {
    // Qword 7 of each row's hd holds its {d0, d1, d2, d3}: gather the four, then transpose.
    const __m512i t01 = _mm512_unpackhi_epi64(hd[0], hd[1]);  // 128-bit lane 3: rows 0, 1
    const __m512i t23 = _mm512_unpackhi_epi64(hd[2], hd[3]);
    const __m512i d = _mm512_shuffle_i64x2(t01, t23, _MM_SHUFFLE(3, 3, 3, 3));  // qwords 0, 1, 4, 5
    const __m512i dT = _mm512_permutexvar_epi16(perm_index(kPerm.q8_dT), d);
    const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(dT));
    return {hsum4_blocks(acc[0], acc[1], acc[2], acc[3]), dw};
  }
  const __m512i i01 = perm_index(kPerm.q8_scales01), i23 = perm_index(kPerm.q8_scales23);
  const __m512 dw = scales4(_mm512_castsi512_si128(_mm512_permutex2var_epi16(v1[0], i01, v1[1])),
                            _mm512_castsi512_si128(_mm512_permutex2var_epi16(v1[2], i01, v1[3])),
                            _mm512_castsi512_si128(_mm512_permutex2var_epi16(v2[0], i23, v2[1])),
                            _mm512_castsi512_si128(_mm512_permutex2var_epi16(v2[2], i23, v2[3])));
  return {hsum4_blocks(acc[0], acc[1], acc[2], acc[3]), dw};
}

// The weight scales of a Q4_0 step from its rows' loaded bytes v[0..3] (d_j at word 9j): per
// 128-bit lane j {d_j of rows 0-3}. Two permutes leave {d0, d1 of rows a, b} in the low 128-bit
// lane and {d2, d3 of a, b} in the high one, and one 32-bit unpack per lane interleaves the two
// row pairs.
[[gnu::always_inline]] inline __m512 q4_0_scales(const __m512i v[4]) {
  const __m512i is = perm_index(kPerm.q4_scales);
  const __m256i ab = _mm512_castsi512_si256(_mm512_permutex2var_epi16(v[0], is, v[1]));
  const __m256i cd = _mm512_castsi512_si256(_mm512_permutex2var_epi16(v[2], is, v[3]));
  return _mm512_cvtph_ps(_mm256_unpacklo_epi32(ab, cd));
}

// Q4_0, K (1-4) blocks from each row: low nibbles against x quants 0-15, high against 16-31.
//
// Intel's two vector ports bound this kernel, and its shuffles all go to one of them (port 5),
// where the two-source vpermt2w costs two cycles and the one-source vpermw one (measured on
// Emerald Rapids, 2026-12-06). So a whole step (K == 4) is cut with one-source permutes: blocks
// 0-2 from the row's first 64 bytes, block 3's quants broadcast from a 16-byte load of their own
// (done by the load port) and kept in lane 3 by the permute's mask; the four rows' scales are
// picked by four masked permutes. And the 4 x 4 block sums are reduced with packs and pair sums,
// not unpacks and adds: each int32 partial of a Q4_0 step is a sum of 8 terms (q - 8) * x with
// |q - 8| <= 8 and |x| <= 127, so |partial| <= 8128 and a sum of two <= 16256: int16 holds them,
// the saturating packs never saturate, and the sums stay exact. (Q8_0's partials reach
// 8 * 128 * 127: it keeps hsum4_blocks.) One thread, in L2 (512 KiB of rows, n = 2048 and 5632):
// 24.2-24.7 GB/s with the two-source cut and unpacks, 27.2 with these.
template <int K>
[[gnu::always_inline]] inline Sums q4_0_sums(const char* const (&rows)[4], int64_t pf,
                                             const XQuad& xq) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512i v[4], acc[4];
  if constexpr (K == 4) {
    const __m512i cut = perm_index(kPerm.q4_cut);
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
      const char* wr = rows[r];
      // 72 bytes a step: two prefetches keep every 64-byte line covered.
      _mm_prefetch(ahead(wr, pf), _MM_HINT_T1);
      _mm_prefetch(ahead(wr, pf + 64), _MM_HINT_T1);
      v[r] = _mm512_loadu_si512(wr);
      const __m512i b3 =
          _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + 56)));
      const __m512i q = _mm512_mask_permutexvar_epi16(b3, 0x00FFFFFF, cut, v[r]);
      const __m512i lo = _mm512_and_si512(q, m4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
      acc[r] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(xq.init, lo, xq.lo), hi, xq.hi);
    }
    const __m512i ds = perm_index(kPerm.q4_d);
    __m512i d = _mm512_permutexvar_epi16(ds, v[0]);
    d = _mm512_mask_permutexvar_epi16(d, 0x2222, ds, v[1]);
    d = _mm512_mask_permutexvar_epi16(d, 0x4444, ds, v[2]);
    d = _mm512_mask_permutexvar_epi16(d, 0x8888, ds, v[3]);
    const __m512i ones = _mm512_set1_epi16(1);
    const __m512i ab = _mm512_madd_epi16(_mm512_packs_epi32(acc[0], acc[1]), ones);
    const __m512i cd = _mm512_madd_epi16(_mm512_packs_epi32(acc[2], acc[3]), ones);
    return {_mm512_madd_epi16(_mm512_packs_epi32(ab, cd), ones),
            _mm512_cvtph_ps(_mm512_castsi512_si256(d))};
  }
  const __m512i idx = perm_index(kPerm.q4);
#pragma GCC unroll 4
  for (int r = 0; r < 4; r++) {
    const char* wr = rows[r];
    v[r] = load_bytes(wr, 18 * K);
    const __m512i q = _mm512_permutex2var_epi16(v[r], idx, _mm512_setzero_si512());
    const __m512i lo = _mm512_and_si512(q, m4);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
    acc[r] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(xq.init, lo, xq.lo), hi, xq.hi);
  }
  return {hsum4_blocks(acc[0], acc[1], acc[2], acc[3]), q4_0_scales(v)};
}

// Rows w, w + stride, w + 2 stride, w + 3 stride (in blocks), blocks [0, nb) of them, adding to
// val. Software-pipelined: the float part of a step comes after the int part of the next, so the
// core has independent work while a step's long chain (loads, dot products, reduction) finishes.
template <typename Block, template <int> class Step>
__m128 blocks_rows4(__m128 val, const Block* w, int64_t stride, const XQuad* xq, int64_t nb) {
  int64_t b = 0;
  if (nb >= 4) {
    Sums s = Step<4>::sums(w, stride, xq[0]);
    for (b = 4; b + 4 <= nb; b += 4) {
      const Sums next = Step<4>::sums(w + b, stride, xq[b / 4]);
      val = scale_add_blocks<4>(val, s, xq[b / 4 - 1].dx);
      s = next;
    }
    val = scale_add_blocks<4>(val, s, xq[b / 4 - 1].dx);
  }
  switch (nb - b) {
    case 1: return scale_add_blocks<1>(val, Step<1>::sums(w + b, stride, xq[b / 4]), xq[b / 4].dx);
    case 2: return scale_add_blocks<2>(val, Step<2>::sums(w + b, stride, xq[b / 4]), xq[b / 4].dx);
    case 3: return scale_add_blocks<3>(val, Step<3>::sums(w + b, stride, xq[b / 4]), xq[b / 4].dx);
    default: return val;
  }
}

// The first bytes of rows w + r * stride, r = 0..3.
template <typename Block>
[[gnu::always_inline]] inline void row_starts(const char* (&rows)[4], const Block* w,
                                              int64_t stride) {
  for (int r = 0; r < 4; r++) rows[r] = reinterpret_cast<const char*>(w + r * stride);
}

// Four rows at a time: Q8_0 prefetches the next four rows, Q4_0 (its rows are short) the four
// after them, ~9 KiB ahead at n = 2048.
template <int K>
struct Q8_0Step {
  static Sums sums(const BlockQ8_0* w, int64_t stride, const XQuad& xq) {
    const char* rows[4];
    row_starts(rows, w, stride);
    return q8_0_sums<K>(rows, 4 * stride * 34, xq);
  }
};
template <int K>
struct Q4_0Step {
  static Sums sums(const BlockQ4_0* w, int64_t stride, const XQuad& xq) {
    const char* rows[4];
    row_starts(rows, w, stride);
    return q4_0_sums<K>(rows, 8 * stride * 18, xq);
  }
  static Sums sums(const char* const (&rows)[4], int64_t pf, const XQuad& xq) {
    return q4_0_sums<K>(rows, pf, xq);
  }
};

// Q4_0, sixteen rows w + i * stride, i = 4g + r, blocks [0, nb), adding to v (row i in float i):
// each step's four groups of four rows as in blocks_rows4, their block terms transposed to one
// vector per block (16 rows) and added in block order, per row the same float adds as
// scale_add_blocks<4> without its three lane extracts and four narrow adds per group (Intel's
// vector ports again: in L2 as above, 27.2 -> 28.7 GB/s; Q8_0's kernel, less bound by them,
// measured the same either way and stays at four rows). The weights are prefetched a block of 16
// rows ahead.
template <typename Block, template <int> class Step>
__m512 blocks_rows16(__m512 v, const Block* w, int64_t stride, const XQuad* xq, int64_t nb) {
  int64_t b = 0;
  // Addresses from one base and a few stride multiples, the base hidden from the optimizer each
  // step: else GCC keeps sixteen row pointers, more than there are registers.
  const int64_t rs = stride * int64_t(sizeof(Block)), rs3 = 3 * rs, rs4 = 4 * rs, pf = 16 * rs;
  for (; b + 4 <= nb; b += 4) {
    const XQuad& x = xq[b / 4];
    __m512 f[4];  // group g, per 128-bit lane j: block j's terms of rows 4g .. 4g+3
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
      const char* base = reinterpret_cast<const char*>(w + b);
      asm("" : "+r"(base));
      const char* pg = base + g * rs4;
      const char* const rows[4] = {pg, pg + rs, pg + 2 * rs, pg + rs3};
      const Sums s = Step<4>::sums(rows, pf, x);
      f[g] = _mm512_mul_ps(_mm512_cvtepi32_ps(s.isum), _mm512_mul_ps(s.dw, x.dx));
    }
    v = add_blocks_transposed(v, f);
  }
  if (b == nb) return v;
  alignas(64) float out[16];
  _mm512_store_ps(out, v);
  for (int g = 0; g < 4; g++) {
    const Block* wg = w + 4 * g * stride + b;
    const XQuad& x = xq[b / 4];
    __m128 val = _mm_load_ps(out + 4 * g);
    switch (nb - b) {
      case 1: val = scale_add_blocks<1>(val, Step<1>::sums(wg, stride, x), x.dx); break;
      case 2: val = scale_add_blocks<2>(val, Step<2>::sums(wg, stride, x), x.dx); break;
      default: val = scale_add_blocks<3>(val, Step<3>::sums(wg, stride, x), x.dx); break;
    }
    _mm_store_ps(out + 4 * g, val);
  }
  return _mm512_load_ps(out);
}

template <typename Block, template <int> class Step>
void blocks_matvec(float* y, const Block* w, const BlockQ8_0* x, int n, int r0, int r1,
                   int offset) {
  const int64_t nb = n / 32;
  XQuad xq[kChunkBlocks / 4];
  for (int64_t c0 = 0; c0 < nb; c0 += kChunkBlocks) {  // the chunk's blocks: [c0, c0 + cb)
    const int64_t cb = nb - c0 < kChunkBlocks ? nb - c0 : kChunkBlocks;
    prepare_x(xq, x + c0, cb, offset);
    int i = r0;
    if constexpr (sizeof(Block) == sizeof(BlockQ4_0)) {
      for (; i + 16 <= r1; i += 16) {
        const __m512 v = c0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(y + i);
        _mm512_storeu_ps(y + i, blocks_rows16<Block, Step>(v, w + i * nb + c0, nb, xq, cb));
      }
    }
    for (; i + 4 <= r1; i += 4) {
      const __m128 val = c0 == 0 ? _mm_setzero_ps() : _mm_loadu_ps(y + i);
      _mm_storeu_ps(y + i, blocks_rows4<Block, Step>(val, w + i * nb + c0, nb, xq, cb));
    }
    for (; i < r1; i++) {
      const __m128 val = c0 == 0 ? _mm_setzero_ps() : _mm_set1_ps(y[i]);
      y[i] = _mm_cvtss_f32(blocks_rows4<Block, Step>(val, w + i * nb + c0, 0, xq, cb));
    }
  }
}

// ---- Batched products (matmul): each row's floats exactly as the matvec above gives them ----

// f32: R rows x T tokens, each (row, token) with f32_row's two accumulators, the same columns
// into each, the same tail handling and the same reduction; each weight load feeds T tokens.
template <int R, int T>
void f32_tile(float* y, int64_t ldy, const float* w, const float* x, int64_t ldx, int64_t n) {
  __m512 a[R][T], b[R][T];
  for (int r = 0; r < R; r++) {
    for (int t = 0; t < T; t++) a[r][t] = b[r][t] = _mm512_setzero_ps();
  }
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    __m512 x0[T], x1[T];
    for (int t = 0; t < T; t++) {
      x0[t] = _mm512_loadu_ps(x + t * ldx + j);
      x1[t] = _mm512_loadu_ps(x + t * ldx + j + 16);
    }
    for (int r = 0; r < R; r++) {
      __m512 w0 = _mm512_loadu_ps(w + r * n + j), w1 = _mm512_loadu_ps(w + r * n + j + 16);
      // Into registers: else GCC folds the loads into the FMAs and loads each weight T times.
      asm("" : "+v"(w0), "+v"(w1));
      for (int t = 0; t < T; t++) {
        a[r][t] = _mm512_fmadd_ps(w0, x0[t], a[r][t]);
        b[r][t] = _mm512_fmadd_ps(w1, x1[t], b[r][t]);
      }
    }
  }
  if (j + 16 <= n) {
    for (int r = 0; r < R; r++) {
      const __m512 w0 = _mm512_loadu_ps(w + r * n + j);
      for (int t = 0; t < T; t++) a[r][t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + t * ldx + j), a[r][t]);
    }
    j += 16;
  }
  if (j < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - j)) - 1);
    for (int r = 0; r < R; r++) {
      const __m512 w0 = _mm512_maskz_loadu_ps(m, w + r * n + j);
      for (int t = 0; t < T; t++) {
        b[r][t] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, x + t * ldx + j), b[r][t]);
      }
    }
  }
  for (int r = 0; r < R; r++) {
    for (int t = 0; t < T; t++) a[r][t] = _mm512_add_ps(a[r][t], b[r][t]);
  }
  for (int t = 0; t < T; t++) {
    if constexpr (R == 4) {
      _mm_storeu_ps(y + t * ldy, hsum4_ps(a[0][t], a[1][t], a[2][t], a[3][t]));
    } else {
      for (int r = 0; r < R; r++) {
        y[t * ldy + r] = _mm_cvtss_f32(hsum4_ps(a[r][t], a[r][t], a[r][t], a[r][t]));
      }
    }
  }
}

template <int T>
void f32_tokens(float* y, int64_t ldy, const float* w, const float* x, int64_t ldx, int64_t n,
                int r0, int r1) {
  int i = r0;
  for (; i + 4 <= r1; i += 4) f32_tile<4, T>(y + i, ldy, w + i * n, x, ldx, n);
  for (; i < r1; i++) f32_tile<1, T>(y + i, ldy, w + i * n, x, ldx, n);
}

// Q8_0 / Q4_0: a step of 4 rows x 4 blocks is cut out of the weights once (as q8_0_sums<4> /
// q4_0_sums<4> do) and multiplied with each token's x; each token's float part is the matvec's
// scale_add_blocks in block order, so its floats are the matvec's.
struct WStep {
  __m512i lo[4], hi[4];  // unsigned (offset) quants, laid out as XQuad's lo / hi
  __m512 dw;             // per 128-bit lane j: d of block j of rows 0-3
};

[[gnu::always_inline]] inline WStep q8_0_decode(const BlockQ8_0* w, int64_t stride) {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i ilo = perm_index(kPerm.q8_lo), ihi = perm_index(kPerm.q8_hi);
  WStep s;
  __m512i hd[4];
#pragma GCC unroll 4
  for (int r = 0; r < 4; r++) {
    const char* wr = reinterpret_cast<const char*>(w + r * stride);
    const __m512i v1 = _mm512_loadu_si512(wr), v2 = _mm512_loadu_si512(wr + 64);
    s.lo[r] = _mm512_xor_si512(_mm512_permutex2var_epi16(v1, ilo, v2), bias);
    hd[r] = _mm512_permutex2var_epi16(v1, ihi, v2);
    int64_t last;
    __builtin_memcpy(&last, wr + 128, 8);
    s.hi[r] = _mm512_xor_si512(_mm512_mask_set1_epi64(hd[r], 0x80, last), bias);
  }
  const __m512i t01 = _mm512_unpackhi_epi64(hd[0], hd[1]);
  const __m512i t23 = _mm512_unpackhi_epi64(hd[2], hd[3]);
  const __m512i d = _mm512_shuffle_i64x2(t01, t23, _MM_SHUFFLE(3, 3, 3, 3));
  const __m512i dT = _mm512_permutexvar_epi16(perm_index(kPerm.q8_dT), d);
  s.dw = _mm512_cvtph_ps(_mm512_castsi512_si256(dT));
  return s;
}

[[gnu::always_inline]] inline WStep q4_0_decode(const BlockQ4_0* w, int64_t stride) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i idx = perm_index(kPerm.q4);
  WStep s;
  __m512i v[4];
#pragma GCC unroll 4
  for (int r = 0; r < 4; r++) {
    const char* wr = reinterpret_cast<const char*>(w + r * stride);
    v[r] = _mm512_loadu_si512(wr);
    const __m512i v2 =
        _mm512_zextsi128_si512(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(wr + 64)));
    const __m512i q = _mm512_permutex2var_epi16(v[r], idx, v2);
    s.lo[r] = _mm512_and_si512(q, m4);
    s.hi[r] = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
  }
  s.dw = q4_0_scales(v);
  return s;
}

[[gnu::always_inline]] inline Sums wstep_sums(const WStep& w, const XQuad& xq) {
  __m512i acc[4];
#pragma GCC unroll 4
  for (int r = 0; r < 4; r++) {
    acc[r] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(xq.init, w.lo[r], xq.lo), w.hi[r], xq.hi);
  }
  return {hsum4_blocks(acc[0], acc[1], acc[2], acc[3]), w.dw};
}

template <int K>
struct Q8_0Decode {
  static WStep decode(const BlockQ8_0* w, int64_t stride) { return q8_0_decode(w, stride); }
};
template <int K>
struct Q4_0Decode {
  static WStep decode(const BlockQ4_0* w, int64_t stride) { return q4_0_decode(w, stride); }
};

// T tokens (xq: T runs of xstride XQuads) against rows w + r * stride, blocks [0, nb), adding to
// val[t]; the same float operations per row and token as blocks_rows4.
template <int T, typename Block, template <int> class Step, template <int> class Decode>
void blocks_rows4_tokens(__m128* val, const Block* w, int64_t stride, const XQuad* xq,
                         int64_t xstride, int64_t nb) {
  int64_t b = 0;
  if constexpr (T == 4) {
    // The four tokens' sums in one vector, {token 0 rows 0-3, token 1 rows 0-3, ...}: each step's
    // block terms, transposed to one vector per block, are added in block order, the same float
    // adds per row and token as scale_add_blocks<4>, with a quarter of the instructions.
    __m512 v = _mm512_insertf32x4(_mm512_castps128_ps512(val[0]), val[1], 1);
    v = _mm512_insertf32x4(v, val[2], 2);
    v = _mm512_insertf32x4(v, val[3], 3);
    for (; b + 4 <= nb; b += 4) {
      for (int r = 0; r < 4; r++) {
        const char* wr = reinterpret_cast<const char*>(w + b + r * stride);
        _mm_prefetch(ahead(wr, 4 * stride * int64_t(sizeof(Block))), _MM_HINT_T1);
        _mm_prefetch(ahead(wr, 4 * stride * int64_t(sizeof(Block)) + 64), _MM_HINT_T1);
        if (sizeof(Block) == 34) _mm_prefetch(ahead(wr, 4 * stride * 34 + 128), _MM_HINT_T1);
      }
      const WStep ws = Decode<4>::decode(w + b, stride);
      __m512 f[4];  // per token, per 128-bit lane j: block j's terms of rows 0-3
#pragma GCC unroll 4
      for (int t = 0; t < 4; t++) {
        const XQuad& x = xq[t * xstride + b / 4];
        const Sums s = wstep_sums(ws, x);
        f[t] = _mm512_mul_ps(_mm512_cvtepi32_ps(s.isum), _mm512_mul_ps(s.dw, x.dx));
      }
      v = add_blocks_transposed(v, f);
    }
    val[0] = _mm512_castps512_ps128(v);
    val[1] = _mm512_extractf32x4_ps(v, 1);
    val[2] = _mm512_extractf32x4_ps(v, 2);
    val[3] = _mm512_extractf32x4_ps(v, 3);
  }
  for (; b + 4 <= nb; b += 4) {
    // The next step's bytes (see q8_0_sums): the weights of the first token pass come from DRAM.
    for (int r = 0; r < 4; r++) {
      const char* wr = reinterpret_cast<const char*>(w + b + r * stride);
      _mm_prefetch(ahead(wr, 4 * stride * int64_t(sizeof(Block))), _MM_HINT_T1);
      _mm_prefetch(ahead(wr, 4 * stride * int64_t(sizeof(Block)) + 64), _MM_HINT_T1);
      if (sizeof(Block) == 34) _mm_prefetch(ahead(wr, 4 * stride * 34 + 128), _MM_HINT_T1);
    }
    const WStep ws = Decode<4>::decode(w + b, stride);
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      const XQuad& x = xq[t * xstride + b / 4];
      val[t] = scale_add_blocks<4>(val[t], wstep_sums(ws, x), x.dx);
    }
  }
  for (int t = 0; t < T; t++) {
    const XQuad& x = xq[t * xstride + b / 4];
    switch (nb - b) {
      case 1: val[t] = scale_add_blocks<1>(val[t], Step<1>::sums(w + b, stride, x), x.dx); break;
      case 2: val[t] = scale_add_blocks<2>(val[t], Step<2>::sums(w + b, stride, x), x.dx); break;
      case 3: val[t] = scale_add_blocks<3>(val[t], Step<3>::sums(w + b, stride, x), x.dx); break;
      default: break;
    }
  }
}

constexpr int kMatmulTokens = 4;  // tokens a pass over the rows

template <typename Block, template <int> class Step, template <int> class Decode>
void blocks_matmul(float* y, int64_t ldy, const Block* w, const BlockQ8_0* x, int64_t ldx, int n,
                   int count, int r0, int r1, int offset) {
  const int64_t nb = n / 32;
  constexpr int64_t xs = kChunkBlocks / 4;
  XQuad xq[kMatmulTokens * xs];
  for (int64_t c0 = 0; c0 < nb; c0 += kChunkBlocks) {  // the chunk's blocks: [c0, c0 + cb)
    const int64_t cb = nb - c0 < kChunkBlocks ? nb - c0 : kChunkBlocks;
    for (int t0 = 0; t0 < count; t0 += kMatmulTokens) {
      const int tn = count - t0 < kMatmulTokens ? count - t0 : kMatmulTokens;
      for (int t = 0; t < tn; t++) prepare_x(xq + t * xs, x + (t0 + t) * ldx + c0, cb, offset);
      float* yt = y + t0 * ldy;
      __m128 val[kMatmulTokens];
      int i = r0;
      for (; i < r1; i += 4) {
        const bool four = i + 4 <= r1;  // else one row, stride 0, as the matvec's last rows
        for (int t = 0; t < tn; t++) {
          if (four) {
            val[t] = c0 == 0 ? _mm_setzero_ps() : _mm_loadu_ps(yt + t * ldy + i);
          } else {
            val[t] = c0 == 0 ? _mm_setzero_ps() : _mm_set1_ps(yt[t * ldy + i]);
          }
        }
        const Block* wi = w + i * nb + c0;
        const int64_t stride = four ? nb : 0;
        if (tn == kMatmulTokens) {
          blocks_rows4_tokens<kMatmulTokens, Block, Step, Decode>(val, wi, stride, xq, xs, cb);
        } else {
          for (int t = 0; t < tn; t++) {
            blocks_rows4_tokens<1, Block, Step, Decode>(val + t, wi, stride, xq + t * xs, xs, cb);
          }
        }
        for (int t = 0; t < tn; t++) {
          if (four) {
            _mm_storeu_ps(yt + t * ldy + i, val[t]);
          } else {
            yt[t * ldy + i] = _mm_cvtss_f32(val[t]);
          }
        }
        if (!four) i -= 3;  // one row at a time from here
      }
    }
  }
}

}  // namespace

void matmul_f32_avx512(float* y, int ldy, const Operand& wo, const Operand& xo, int ldx, int n,
                       int count, int r0, int r1) {
  const auto* w = static_cast<const float*>(wo.data);
  const auto* x = static_cast<const float*>(xo.data);
  int t = 0;
  for (; t + 3 <= count; t += 3) {
    f32_tokens<3>(y + int64_t(t) * ldy, ldy, w, x + int64_t(t) * ldx, ldx, n, r0, r1);
  }
  if (t + 2 <= count) {
    f32_tokens<2>(y + int64_t(t) * ldy, ldy, w, x + int64_t(t) * ldx, ldx, n, r0, r1);
    t += 2;
  }
  if (t < count) f32_tokens<1>(y + int64_t(t) * ldy, ldy, w, x + int64_t(t) * ldx, ldx, n, r0, r1);
}

void matmul_q8_0_avx512(float* y, int ldy, const Operand& w, const Operand& x, int ldx, int n,
                        int count, int r0, int r1) {
  blocks_matmul<BlockQ8_0, Q8_0Step, Q8_0Decode>(y, ldy, static_cast<const BlockQ8_0*>(w.data),
                                                 static_cast<const BlockQ8_0*>(x.data), ldx, n,
                                                 count, r0, r1, 0x80);
}

void matmul_q4_0_avx512(float* y, int ldy, const Operand& w, const Operand& x, int ldx, int n,
                        int count, int r0, int r1) {
  blocks_matmul<BlockQ4_0, Q4_0Step, Q4_0Decode>(y, ldy, static_cast<const BlockQ4_0*>(w.data),
                                                 static_cast<const BlockQ8_0*>(x.data), ldx, n,
                                                 count, r0, r1, 8);
}

void matvec_f32_avx512(float* y, const Operand& wo, const Operand& xo, int n, int r0, int r1) {
  const auto* w = static_cast<const float*>(wo.data);
  const auto* x = static_cast<const float*>(xo.data);
  for (int i = r0; i < r1; i++) y[i] = f32_row(w + static_cast<int64_t>(i) * n, x, n);
}

void matvec_q8_groups_avx512(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  constexpr int kMaxGroups = 4096;  // corr on the stack (16 KiB): n up to 131072 with gs = 32
  const int gs = w.group_size;
  if (gs <= 0 || gs % 32 != 0 || n % gs != 0 || n / gs > kMaxGroups) {
    // AVX2 is there whenever AVX-512 is; it takes gs % 16 == 0 and else calls the reference.
    matvec_q8_groups_avx2(y, w, x, n, r0, r1);
    return;
  }
  const auto* wq = static_cast<const int8_t*>(w.data);
  const auto* xq = static_cast<const int8_t*>(x.data);
  const float* ws = w.scales;
  const float* xs = x.scales;
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

void matvec_f16_avx512(float* y, const Operand& wo, const Operand& xo, int n, int r0, int r1) {
  const auto* w = static_cast<const uint16_t*>(wo.data);
  const auto* x = static_cast<const float*>(xo.data);
  for (int i = r0; i < r1; i++) y[i] = f16_row(w + static_cast<int64_t>(i) * n, x, n);
}

void matvec_q8_0_avx512(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  blocks_matvec<BlockQ8_0, Q8_0Step>(y, static_cast<const BlockQ8_0*>(w.data),
                                     static_cast<const BlockQ8_0*>(x.data), n, r0, r1, 0x80);
}

void matvec_q4_0_avx512(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  blocks_matvec<BlockQ4_0, Q4_0Step>(y, static_cast<const BlockQ4_0*>(w.data),
                                     static_cast<const BlockQ8_0*>(x.data), n, r0, r1, 8);
}

}  // namespace troupe::kernels::detail
