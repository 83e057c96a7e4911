// NEON matvec for AArch64, baseline ARMv8 only (this file is built without -march flags, so it
// runs on every arm64 core, e.g. Cortex-A72 of the Raspberry Pi 4): f32, f16, and the int8
// products through widening multiplies. With sdot, matvec_neon_dotprod.cpp replaces the int8 ones.
// As in the x86 files: internal linkage only, no standard-library templates.
#if defined(__aarch64__)

#include <arm_neon.h>

#include <cstdint>

#include "matvec_impl.hpp"
#include "matvec_neon_int8.hpp"

namespace troupe::kernels::detail {

namespace {

// R rows at once, two accumulators per row, each x load shared by R rows; scalar tail.
template <int R>
void f32_rows(float* y, const float* w, const float* x, int64_t n) {
  float32x4_t a[R], b[R];
  for (int r = 0; r < R; r++) a[r] = b[r] = vdupq_n_f32(0.0f);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const float32x4_t x0 = vld1q_f32(x + j), x1 = vld1q_f32(x + j + 4);
    for (int r = 0; r < R; r++) {
      a[r] = vfmaq_f32(a[r], vld1q_f32(w + r * n + j), x0);
      b[r] = vfmaq_f32(b[r], vld1q_f32(w + r * n + j + 4), x1);
    }
  }
  for (int r = 0; r < R; r++) {
    float s = vaddvq_f32(vaddq_f32(a[r], b[r]));
    for (int64_t k = j; k < n; k++) s += w[r * n + k] * x[k];
    y[r] = s;
  }
}

// f16 weights: as f32_rows, each 8 halves widened (fcvtl, exact); scalar tail.
template <int R>
void f16_rows(float* y, const uint16_t* w, const float* x, int64_t n) {
  float32x4_t a[R], b[R];
  for (int r = 0; r < R; r++) a[r] = b[r] = vdupq_n_f32(0.0f);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const float32x4_t x0 = vld1q_f32(x + j), x1 = vld1q_f32(x + j + 4);
    for (int r = 0; r < R; r++) {
      const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(w + r * n + j));
      a[r] = vfmaq_f32(a[r], vcvt_f32_f16(vget_low_f16(h)), x0);
      b[r] = vfmaq_f32(b[r], vcvt_high_f32_f16(h), x1);
    }
  }
  for (int r = 0; r < R; r++) {
    float s = vaddvq_f32(vaddq_f32(a[r], b[r]));
    for (int64_t k = j; k < n; k++) s += half_to_float(w[r * n + k]) * x[k];
    y[r] = s;
  }
}

}  // namespace

void matvec_f32_neon(float* y, const Operand& wo, const Operand& xo, int n, int r0, int r1) {
  const auto* w = static_cast<const float*>(wo.data);
  const auto* x = static_cast<const float*>(xo.data);
  int i = r0;
  for (; i + 4 <= r1; i += 4) f32_rows<4>(y + i, w + static_cast<int64_t>(i) * n, x, n);
  for (; i < r1; i++) f32_rows<1>(y + i, w + static_cast<int64_t>(i) * n, x, n);
}

void matvec_q8_groups_neon(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  q8_matvec<DotWiden>(y, static_cast<const int8_t*>(w.data), w.scales,
                      static_cast<const int8_t*>(x.data), x.scales, n, w.group_size, r0, r1);
}

void matvec_f16_neon(float* y, const Operand& wo, const Operand& xo, int n, int r0, int r1) {
  const auto* w = static_cast<const uint16_t*>(wo.data);
  const auto* x = static_cast<const float*>(xo.data);
  int i = r0;
  for (; i + 4 <= r1; i += 4) f16_rows<4>(y + i, w + static_cast<int64_t>(i) * n, x, n);
  for (; i < r1; i++) f16_rows<1>(y + i, w + static_cast<int64_t>(i) * n, x, n);
}

void matvec_q8_0_neon(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  q8_0_matvec<DotWiden>(y, static_cast<const BlockQ8_0*>(w.data),
                        static_cast<const BlockQ8_0*>(x.data), n, r0, r1);
}

void matvec_q4_0_neon(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  q4_0_matvec<DotWiden>(y, static_cast<const BlockQ4_0*>(w.data),
                        static_cast<const BlockQ8_0*>(x.data), n, r0, r1);
}

}  // namespace troupe::kernels::detail

#endif  // __aarch64__
