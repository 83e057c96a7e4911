// AVX2 paths of attention's loops over cached positions (kernels.hpp's key_scores and
// weighted_sums): attention_avx512.cpp's chains on 8 lanes, a key block as two halves of 8
// positions. Each lane is the reference's chain (a multiply, then an add; no contraction), so the
// floats are the reference's bit for bit. Compiled with the flags of matvec_avx2.cpp and only
// called when the CPU has them.
#include <immintrin.h>

#include <cstddef>

#include "matvec_impl.hpp"
#include "query_groups.hpp"

namespace troupe::kernels::detail {

namespace {

constexpr int kHalf = kKeyBlock / 2;

// All ones in the first `live` lanes (maskload / maskstore take the top bit of each lane).
__m256i first_lanes(int live) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(live), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Q queries against the H halves of key blocks from half u: Q * H chains of n steps.
template <int Q, int H>
void scores_tile(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                 const float* keys, int u, int count, int n, float scale) {
  __m256 acc[Q][H];
  const float* half[H];
#pragma GCC unroll 8
  for (int j = 0; j < H; j++) {
    half[j] = keys + std::ptrdiff_t((u + j) / 2) * n * kKeyBlock + ((u + j) % 2) * kHalf;
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) acc[k][j] = _mm256_setzero_ps();
  }
  for (int i = 0; i < n; i++) {
    __m256 key[H];
#pragma GCC unroll 8
    for (int j = 0; j < H; j++) key[j] = _mm256_loadu_ps(half[j] + std::ptrdiff_t(i) * kKeyBlock);
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) {
      const __m256 a = _mm256_set1_ps(q[k * q_stride + i]);
#pragma GCC unroll 8
      for (int j = 0; j < H; j++) acc[k][j] = _mm256_add_ps(acc[k][j], _mm256_mul_ps(a, key[j]));
    }
  }
  const __m256 s = _mm256_set1_ps(scale);
#pragma GCC unroll 8
  for (int j = 0; j < H; j++) {
    const int pos = (u + j) * kHalf;
    const __m256i m = first_lanes(count - pos);
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) _mm256_maskstore_ps(out + k * out_stride + pos, m, _mm256_div_ps(acc[k][j], s));
  }
}

template <int Q>
void scores_queries(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                    const float* keys, int count, int n, float scale) {
  constexpr int H = 8 / Q;
  const int halves = (count + kHalf - 1) / kHalf;
  int u = 0;
  for (; u + H <= halves; u += H) scores_tile<Q, H>(out, out_stride, q, q_stride, keys, u, count, n, scale);
  for (; u < halves; u++) scores_tile<Q, 1>(out, out_stride, q, q_stride, keys, u, count, n, scale);
}

// Q weight vectors against the C column vectors (8 each) from column i0.
template <int Q, int C>
void sums_tile(float* out, std::ptrdiff_t out_stride, const float* w, std::ptrdiff_t w_stride,
               const float* rows, std::ptrdiff_t stride, int count, int n, int i0) {
  __m256i m[C];
  __m256 acc[Q][C];
#pragma GCC unroll 4
  for (int c = 0; c < C; c++) {
    m[c] = first_lanes(n - i0 - 8 * c);
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) acc[k][c] = _mm256_setzero_ps();
  }
  for (int r = 0; r < count; r++) {
    const float* row = rows + r * stride + i0;
    __m256 v[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) v[c] = _mm256_maskload_ps(row + 8 * c, m[c]);
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) {
      const __m256 a = _mm256_set1_ps(w[k * w_stride + r]);
#pragma GCC unroll 4
      for (int c = 0; c < C; c++) acc[k][c] = _mm256_add_ps(acc[k][c], _mm256_mul_ps(a, v[c]));
    }
  }
#pragma GCC unroll 8
  for (int k = 0; k < Q; k++) {
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) _mm256_maskstore_ps(out + k * out_stride + i0 + 8 * c, m[c], acc[k][c]);
  }
}

// 8 accumulators a pass (16 registers in all): 8 vectors x 1 column of 8, 4 x 2, 2 x 4, 1 x 4.
template <int Q>
void sums_queries(float* out, std::ptrdiff_t out_stride, const float* w, std::ptrdiff_t w_stride,
                  const float* rows, std::ptrdiff_t stride, int count, int n) {
  constexpr int C = Q >= 2 ? 8 / Q : 4;
  for (int i0 = 0; i0 < n; i0 += 8 * C) sums_tile<Q, C>(out, out_stride, w, w_stride, rows, stride, count, n, i0);
}

}  // namespace

void key_scores_avx2(float* out, std::ptrdiff_t out_stride, const float* q,
                     std::ptrdiff_t q_stride, int queries, const float* keys, int count, int n,
                     float scale) {
  for_query_groups(queries, [&](auto group, int k) {
    constexpr int Q = decltype(group)::value;
    scores_queries<Q>(out + k * out_stride, out_stride, q + k * q_stride, q_stride, keys, count, n,
                      scale);
  });
}

void weighted_sums_avx2(float* out, std::ptrdiff_t out_stride, const float* w,
                        std::ptrdiff_t w_stride, int queries, const float* rows,
                        std::ptrdiff_t stride, int count, int n) {
  for_query_groups(queries, [&](auto group, int k) {
    constexpr int Q = decltype(group)::value;
    sums_queries<Q>(out + k * out_stride, out_stride, w + k * w_stride, w_stride, rows, stride, count,
                    n);
  });
}

}  // namespace troupe::kernels::detail
