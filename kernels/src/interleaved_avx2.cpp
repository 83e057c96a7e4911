// AVX2 batched products over interleaved Q8_0 / Q4_0 blocks (kernels.hpp): interleaved_256.hpp's
// kernel with AVX2's byte multiply-adds. Compiled with the flags of matvec_avx2.cpp and only
// called when the CPU has them. Also here: the copy of whole groups of ggml blocks into that
// layout, as the AVX-512 one (interleaved_avxvnni.cpp uses it too).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "interleaved_256.hpp"
#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

namespace {

// ---- Copying ggml blocks into groups: interleaved_avx512.cpp's copy, 8 rows a transpose ----

// 16 bytes of each of 8 rows (p + r * stride) -> 4 vectors, vector k holding bytes 4k..4k+3 of
// row r in 32-bit lane r: lane L (128 bits) of a[j] takes row 4L + j, so that two rounds of
// unpacks leave every row in its own lane.
[[gnu::always_inline]] inline void transpose_8x4(__m256i out[4], const uint8_t* p, int64_t stride) {
  __m256i a[4];
  for (int j = 0; j < 4; j++) {
    const auto row = [&](int r) {
      return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + r * stride));
    };
    a[j] = _mm256_set_m128i(row(4 + j), row(j));
  }
  const __m256i t0 = _mm256_unpacklo_epi32(a[0], a[1]), t1 = _mm256_unpackhi_epi32(a[0], a[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(a[2], a[3]), t3 = _mm256_unpackhi_epi32(a[2], a[3]);
  out[0] = _mm256_unpacklo_epi64(t0, t2);
  out[1] = _mm256_unpackhi_epi64(t0, t2);
  out[2] = _mm256_unpacklo_epi64(t1, t3);
  out[3] = _mm256_unpackhi_epi64(t1, t3);
}

// A prefetch address past the end of the matrix is never dereferenced; formed as an integer.
const char* ahead(const void* p, int64_t bytes) {
  return reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes));
}

template <typename Block>
void interleave_groups(uint8_t* dst, const Block* src, int groups, int nb) {
  constexpr bool q4 = sizeof(Block) == sizeof(BlockQ4_0);
  constexpr int64_t quants = q4 ? int64_t(kQuantsQ4_0x16) : int64_t(kQuantsQ8_0x16);
  const int64_t stride = int64_t(nb) * int64_t(sizeof(Block));  // bytes from a row to the next
  const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int g = 0; g < groups; g++) {
    uint8_t* group = dst + int64_t(g) * nb * (quants + int64_t(kScalesX16));
    const auto* rows = reinterpret_cast<const uint8_t*>(src + int64_t(g) * kInterleave * nb);
    for (int b = 0; b < nb; b++) {
      const uint8_t* block = rows + int64_t(b) * int64_t(sizeof(Block));
      if (q4 ? b % 2 == 0 : true) {  // the same block of the next group's rows, into L2
        for (int r = 0; r < kInterleave; r++) {
          _mm_prefetch(ahead(block, (kInterleave + r) * stride), _MM_HINT_T1);
        }
      }
      uint8_t* q = group + b * quants;
      auto* scales = reinterpret_cast<uint16_t*>(group + nb * quants) + b * kInterleave;
      for (int half = 0; half < 2; half++) {
        const uint8_t* at = block + 8 * half * stride;
        __m256i piece[4];
        transpose_8x4(piece, at + 2, stride);  // quants start after the 2-byte scale
        for (int k = 0; k < 4; k++) {
          const __m256i v = q4 ? piece[k] : _mm256_xor_si256(piece[k], bias);  // Q8_0: q + 128
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 64 * k + 32 * half), v);
        }
        if constexpr (!q4) {  // quants 16-31: pieces 4-7
          transpose_8x4(piece, at + 18, stride);
          for (int k = 0; k < 4; k++) {
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 64 * (4 + k) + 32 * half),
                                _mm256_xor_si256(piece[k], bias));
          }
        }
        for (int r = 0; r < 8; r++) std::memcpy(scales + 8 * half + r, at + r * stride, 2);
      }
    }
  }
}

}  // namespace

void interleave_groups_q8_0_avx2(uint8_t* dst, const BlockQ8_0* src, int groups, int nb) {
  interleave_groups(dst, src, groups, nb);
}
void interleave_groups_q4_0_avx2(uint8_t* dst, const BlockQ4_0* src, int groups, int nb) {
  interleave_groups(dst, src, groups, nb);
}

void matmul_q8_0x16_avx2(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x,
                         const XBlockSum* xs, int ldx_blocks, int n, int count, int r0, int r1) {
  x16_matmul<false, false>(y, ldy, w, x, xs, ldx_blocks, n, count, r0, r1);
}
void matmul_q4_0x16_avx2(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x,
                         const XBlockSum* xs, int ldx_blocks, int n, int count, int r0, int r1) {
  x16_matmul<true, false>(y, ldy, w, x, xs, ldx_blocks, n, count, r0, r1);
}

}  // namespace troupe::kernels::detail
