// NEON matvec for AArch64. The f32 path and the plain q8 path use only baseline ARMv8 NEON; the
// dotprod q8 path needs sdot (ARMv8.2 +dotprod), which dispatch.cpp checks before using it. The
// file is built with +dotprod, but the compiler emits sdot only where vdotq_s32 is written.
// As in the x86 files: internal linkage only, no standard-library templates.
#if defined(__aarch64__)

#include <arm_neon.h>

#include <cstdint>

#include "matvec_impl.hpp"

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

// One 16-byte step of an exact int8 dot product into int32 lanes.
struct DotSdot {
  static int32x4_t step(int32x4_t acc, int8x16_t w, int8x16_t x) { return vdotq_s32(acc, w, x); }
};
// Without sdot: widening multiply to int16 (|w*x| <= 16384 fits), then pairwise add into int32.
struct DotWiden {
  static int32x4_t step(int32x4_t acc, int8x16_t w, int8x16_t x) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(w), vget_low_s8(x)));
    return vpadalq_s16(acc, vmull_high_s8(w, x));
  }
};

// Exact group sums; the float part repeats runq.c's order per row:
// val += ((float)ival * ws) * xs, so results are bit-identical to the reference.
template <int R, typename Dot>
void q8_rows(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs,
             int64_t n, int64_t gs) {
  const int64_t groups = n / gs;
  float val[R];
  for (int r = 0; r < R; r++) val[r] = 0.0f;
  for (int64_t g = 0; g < groups; g++) {
    int32x4_t acc[R];
    for (int r = 0; r < R; r++) acc[r] = vdupq_n_s32(0);
    for (int64_t k = g * gs; k < (g + 1) * gs; k += 16) {
      const int8x16_t xv = vld1q_s8(xq + k);
      for (int r = 0; r < R; r++) acc[r] = Dot::step(acc[r], vld1q_s8(wq + r * n + k), xv);
    }
    for (int r = 0; r < R; r++) {
      const int32_t ival = vaddvq_s32(acc[r]);
      val[r] += static_cast<float>(ival) * ws[r * groups + g] * xs[g];
    }
  }
  for (int r = 0; r < R; r++) y[r] = val[r];
}

template <typename Dot>
void q8_matvec(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs,
               int n, int gs, int r0, int r1) {
  if (gs <= 0 || gs % 16 != 0 || n % gs != 0) {  // the vector loop needs whole 16-byte steps
    matvec_q8_ref(y, wq, ws, xq, xs, n, gs, r0, r1);
    return;
  }
  const int64_t groups = n / gs;
  int i = r0;
  for (; i + 4 <= r1; i += 4) {
    q8_rows<4, Dot>(y + i, wq + static_cast<int64_t>(i) * n, ws + i * groups, xq, xs, n, gs);
  }
  for (; i < r1; i++) {
    q8_rows<1, Dot>(y + i, wq + static_cast<int64_t>(i) * n, ws + i * groups, xq, xs, n, gs);
  }
}

}  // namespace

void matvec_f32_neon(float* y, const float* w, const float* x, int n, int r0, int r1) {
  int i = r0;
  for (; i + 4 <= r1; i += 4) f32_rows<4>(y + i, w + static_cast<int64_t>(i) * n, x, n);
  for (; i < r1; i++) f32_rows<1>(y + i, w + static_cast<int64_t>(i) * n, x, n);
}

void matvec_q8_neon_dotprod(float* y, const int8_t* wq, const float* ws, const int8_t* xq,
                            const float* xs, int n, int gs, int r0, int r1) {
  q8_matvec<DotSdot>(y, wq, ws, xq, xs, n, gs, r0, r1);
}

void matvec_q8_neon(float* y, const int8_t* wq, const float* ws, const int8_t* xq,
                    const float* xs, int n, int gs, int r0, int r1) {
  q8_matvec<DotWiden>(y, wq, ws, xq, xs, n, gs, r0, r1);
}

}  // namespace troupe::kernels::detail

#endif  // __aarch64__
