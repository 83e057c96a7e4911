// AVX-512 paths of attention's loops over cached positions (kernels.hpp's dot_rows and
// weighted_sum_rows). Each lane runs the reference's chain for one row or one column, with the
// same operations in the same order (a multiply, then an add; no contraction), so the floats are
// the reference's bit for bit. Compiled with the flags of matvec_avx512.cpp and only called when
// the CPU has them.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12, inside its own intrinsics
#endif
#include <immintrin.h>

#include <cstddef>

#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

namespace {

// v[j] = 16 floats of row j -> v[i] = column i of the 16 rows (lane j = row j): unpacks within
// 128-bit lanes, then two rounds of 128-bit lane shuffles.
[[gnu::always_inline]] inline void transpose16(__m512 v[16]) {
  __m512 t[16], u[16];
#pragma GCC unroll 8
  for (int k = 0; k < 8; k++) {
    t[2 * k] = _mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]);      // {r0[4L], r1[4L], r0[4L+1], r1[4L+1]}
    t[2 * k + 1] = _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]);  // {.. [4L+2] .., .. [4L+3] ..}
  }
#pragma GCC unroll 4
  for (int g = 0; g < 4; g++) {  // rows 4g .. 4g+3: u[4g + c] lane L = their column 4L + c
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; c++) {  // a 4 x 4 transpose of 128-bit lanes across u[c], u[4 + c], ...
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);  // lanes 0, 2 of each
    const __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);  // lanes 1, 3
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
    v[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    v[4 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    v[8 + c] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
    v[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
  }
}

}  // namespace

void dot_rows_avx512(float* out, const float* a, const float* rows, std::ptrdiff_t stride,
                     int count, int n) {
  for (int r = 0; r < count; r += 16) {  // 16 rows, one a lane: s_j += a[i] * row_j[i], i in order
    const float* block = rows + r * stride;
    const int live = count - r < 16 ? count - r : 16;  // the last rows: lanes past them stay 0
    __m512 s = _mm512_setzero_ps();
    int i0 = 0;
    for (; i0 + 16 <= n; i0 += 16) {
      __m512 v[16];
#pragma GCC unroll 16
      for (int j = 0; j < 16; j++) {
        v[j] = j < live ? _mm512_loadu_ps(block + j * stride + i0) : _mm512_setzero_ps();
      }
      transpose16(v);
#pragma GCC unroll 16
      for (int i = 0; i < 16; i++) s = _mm512_add_ps(s, _mm512_mul_ps(_mm512_set1_ps(a[i0 + i]), v[i]));
    }
    if (i0 < n) {  // the last n % 16 columns: masked loads, only those columns added
      const int left = n - i0;
      const __mmask16 m = static_cast<__mmask16>((1u << left) - 1);
      __m512 v[16];
#pragma GCC unroll 16
      for (int j = 0; j < 16; j++) {
        v[j] = j < live ? _mm512_maskz_loadu_ps(m, block + j * stride + i0) : _mm512_setzero_ps();
      }
      transpose16(v);
      for (int i = 0; i < left; i++) s = _mm512_add_ps(s, _mm512_mul_ps(_mm512_set1_ps(a[i0 + i]), v[i]));
    }
    _mm512_mask_storeu_ps(out + r, static_cast<__mmask16>((1u << live) - 1), s);
  }
}

void weighted_sum_rows_avx512(float* out, const float* w, const float* rows,
                              std::ptrdiff_t stride, int count, int n) {
  for (int i0 = 0; i0 < n; i0 += 64) {  // 64 columns, one a lane, in four chains kept in registers
    __mmask16 m[4];
    for (int k = 0; k < 4; k++) {
      const int left = n - i0 - 16 * k;
      m[k] = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
    }
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int r = 0; r < count; r++) {
      const __m512 a = _mm512_set1_ps(w[r]);
      const float* row = rows + r * stride + i0;
#pragma GCC unroll 4
      for (int k = 0; k < 4; k++) {
        acc[k] = _mm512_add_ps(acc[k], _mm512_mul_ps(a, _mm512_maskz_loadu_ps(m[k], row + 16 * k)));
      }
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) _mm512_mask_storeu_ps(out + i0 + 16 * k, m[k], acc[k]);
  }
}

}  // namespace troupe::kernels::detail
