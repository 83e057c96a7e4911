// AVX-512 paths of attention's loops over cached positions (kernels.hpp's key_scores and
// weighted_sums). Each lane runs the reference's chain for one position or one column, with the
// same operations in the same order (a multiply, then an add; no contraction), so the floats are
// the reference's bit for bit. Speed comes from running many chains at once: the queries that
// share a key head (grouped-query attention), and for a lone query several blocks of keys, so
// that the adds' latency hides behind each other. Compiled with the flags of matvec_avx512.cpp
// and only called when the CPU has them.
#include <immintrin.h>

#include <cstddef>

#include "matvec_impl.hpp"
#include "query_groups.hpp"

namespace troupe::kernels::detail {

namespace {

__mmask16 first_lanes(int live) {
  return live >= 16 ? __mmask16(0xFFFF) : live <= 0 ? __mmask16(0) : __mmask16((1u << live) - 1);
}

// Q queries against the B blocks of keys from block b: Q * B chains of n steps, side by side.
template <int Q, int B>
void scores_tile(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                 const float* keys, int b, int count, int n, float scale) {
  __m512 acc[Q][B];
#pragma GCC unroll 8
  for (int k = 0; k < Q; k++) {
#pragma GCC unroll 8
    for (int j = 0; j < B; j++) acc[k][j] = _mm512_setzero_ps();
  }
  const float* block = keys + std::ptrdiff_t(b) * n * kKeyBlock;
  for (int i = 0; i < n; i++) {
    __m512 key[B];
#pragma GCC unroll 8
    for (int j = 0; j < B; j++) key[j] = _mm512_loadu_ps(block + (std::ptrdiff_t(j) * n + i) * kKeyBlock);
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) {
      const __m512 a = _mm512_set1_ps(q[k * q_stride + i]);
#pragma GCC unroll 8
      for (int j = 0; j < B; j++) acc[k][j] = _mm512_add_ps(acc[k][j], _mm512_mul_ps(a, key[j]));
    }
  }
  const __m512 s = _mm512_set1_ps(scale);
#pragma GCC unroll 8
  for (int j = 0; j < B; j++) {
    const int pos = (b + j) * kKeyBlock;
    const __mmask16 m = first_lanes(count - pos);
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) _mm512_mask_storeu_ps(out + k * out_stride + pos, m, _mm512_div_ps(acc[k][j], s));
  }
}

// Q queries against every block: 8 chains a pass (Q * B = 8), single blocks at the end.
template <int Q>
void scores_queries(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                    const float* keys, int count, int n, float scale) {
  constexpr int B = 8 / Q;
  const int blocks = (count + kKeyBlock - 1) / kKeyBlock;
  int b = 0;
  for (; b + B <= blocks; b += B) scores_tile<Q, B>(out, out_stride, q, q_stride, keys, b, count, n, scale);
  for (; b < blocks; b++) scores_tile<Q, 1>(out, out_stride, q, q_stride, keys, b, count, n, scale);
}

// Q weight vectors against the C column vectors from column i0: Q * C chains of count steps.
template <int Q, int C>
void sums_tile(float* out, std::ptrdiff_t out_stride, const float* w, std::ptrdiff_t w_stride,
               const float* rows, std::ptrdiff_t stride, int count, int n, int i0) {
  __mmask16 m[C];
  __m512 acc[Q][C];
#pragma GCC unroll 4
  for (int c = 0; c < C; c++) {
    m[c] = first_lanes(n - i0 - 16 * c);
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) acc[k][c] = _mm512_setzero_ps();
  }
  for (int r = 0; r < count; r++) {
    const float* row = rows + r * stride + i0;
    __m512 v[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) v[c] = _mm512_maskz_loadu_ps(m[c], row + 16 * c);
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) {
      const __m512 a = _mm512_set1_ps(w[k * w_stride + r]);
#pragma GCC unroll 4
      for (int c = 0; c < C; c++) acc[k][c] = _mm512_add_ps(acc[k][c], _mm512_mul_ps(a, v[c]));
    }
  }
#pragma GCC unroll 8
  for (int k = 0; k < Q; k++) {
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) _mm512_mask_storeu_ps(out + k * out_stride + i0 + 16 * c, m[c], acc[k][c]);
  }
}

// 16 accumulators a pass at most: 8 vectors x 2 columns of 16, 4 x 4, or fewer queries x 4.
template <int Q>
void sums_queries(float* out, std::ptrdiff_t out_stride, const float* w, std::ptrdiff_t w_stride,
                  const float* rows, std::ptrdiff_t stride, int count, int n) {
  constexpr int C = Q >= 8 ? 2 : 4;
  for (int i0 = 0; i0 < n; i0 += 16 * C) sums_tile<Q, C>(out, out_stride, w, w_stride, rows, stride, count, n, i0);
}

}  // namespace

void key_scores_avx512(float* out, std::ptrdiff_t out_stride, const float* q,
                       std::ptrdiff_t q_stride, int queries, const float* keys, int count, int n,
                       float scale) {
  for_query_groups(queries, [&](auto group, int k) {
    constexpr int Q = decltype(group)::value;
    scores_queries<Q>(out + k * out_stride, out_stride, q + k * q_stride, q_stride, keys, count, n,
                      scale);
  });
}

void weighted_sums_avx512(float* out, std::ptrdiff_t out_stride, const float* w,
                          std::ptrdiff_t w_stride, int queries, const float* rows,
                          std::ptrdiff_t stride, int count, int n) {
  for_query_groups(queries, [&](auto group, int k) {
    constexpr int Q = decltype(group)::value;
    sums_queries<Q>(out + k * out_stride, out_stride, w + k * w_stride, w_stride, rows, stride, count,
                    n);
  });
}

}  // namespace troupe::kernels::detail
