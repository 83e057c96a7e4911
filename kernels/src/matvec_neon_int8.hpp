// The int8 products of the NEON kernels, shared by matvec_neon.cpp (baseline ARMv8: widening
// multiplies) and matvec_neon_dotprod.cpp (ARMv8.2 sdot), which are compiled with different
// -march flags. Everything here has internal linkage (an unnamed namespace): each file gets its
// own copy built with its own flags, so the linker can never hand the baseline path a function
// compiled for ARMv8.2. No standard-library templates for the same reason.
#pragma once
#if defined(__aarch64__)

#include <arm_neon.h>

#include <cstdint>

#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

namespace {

// Prefetches of the next block of rows run past the end of the matrix on the last block: they
// never fault, but forming a pointer out of bounds is undefined, so the address is an integer.
inline const char* ahead(const void* p, int64_t bytes) {
  return reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes));
}

// Exact conversion (fcvt), as fp16_to_fp32.
inline float half_to_float(uint16_t d) {
  __fp16 h;
  __builtin_memcpy(&h, &d, sizeof h);
  return h;
}

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
    matvec_q8_groups_ref(y, Operand(wq, ws, gs), Operand(xq, xs, gs), n, r0, r1);
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

// ggml Q8_0 / Q4_0 against Q8_0 x: four rows at a time sharing the x loads, the next four rows'
// bytes prefetched; each block's int sum exact (sdot or widening multiplies), and the float part
// the reference's, row by row and block by block: sum += (float)isum * (d_w * d_x). So results
// are bit-identical to matvec_q8_0_ref / matvec_q4_0_ref, whatever the row range or split.
template <int R, typename Dot>
void q8_0_rows(float* y, const BlockQ8_0* w, int64_t stride, const BlockQ8_0* x, int64_t nb) {
  float val[R];
  for (int r = 0; r < R; r++) val[r] = 0.0f;
  for (int64_t b = 0; b < nb; b++) {
    const int8x16_t x0 = vld1q_s8(x[b].qs), x1 = vld1q_s8(x[b].qs + 16);
    const float dx = half_to_float(x[b].d);
    for (int r = 0; r < R; r++) {
      const BlockQ8_0* wb = w + r * stride + b;
      __builtin_prefetch(ahead(wb, R * stride * 34));
      int32x4_t acc = Dot::step(vdupq_n_s32(0), vld1q_s8(wb->qs), x0);
      acc = Dot::step(acc, vld1q_s8(wb->qs + 16), x1);
      val[r] += static_cast<float>(vaddvq_s32(acc)) * (half_to_float(wb->d) * dx);
    }
  }
  for (int r = 0; r < R; r++) y[r] = val[r];
}

// Q4_0: nibble - 8 is in [-8, 7], a signed byte, so the dot is the same as for Q8_0.
template <int R, typename Dot>
void q4_0_rows(float* y, const BlockQ4_0* w, int64_t stride, const BlockQ8_0* x, int64_t nb) {
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  const int8x16_t eight = vdupq_n_s8(8);
  float val[R];
  for (int r = 0; r < R; r++) val[r] = 0.0f;
  for (int64_t b = 0; b < nb; b++) {
    const int8x16_t x0 = vld1q_s8(x[b].qs), x1 = vld1q_s8(x[b].qs + 16);
    const float dx = half_to_float(x[b].d);
    for (int r = 0; r < R; r++) {
      const BlockQ4_0* wb = w + r * stride + b;
      __builtin_prefetch(ahead(wb, R * stride * 18));
      const uint8x16_t v = vld1q_u8(wb->qs);
      const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m4)), eight);
      const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
      const int32x4_t acc = Dot::step(Dot::step(vdupq_n_s32(0), lo, x0), hi, x1);
      val[r] += static_cast<float>(vaddvq_s32(acc)) * (half_to_float(wb->d) * dx);
    }
  }
  for (int r = 0; r < R; r++) y[r] = val[r];
}

template <typename Dot>
void q8_0_matvec(float* y, const BlockQ8_0* w, const BlockQ8_0* x, int n, int r0, int r1) {
  const int64_t nb = n / 32;
  int i = r0;
  for (; i + 4 <= r1; i += 4) q8_0_rows<4, Dot>(y + i, w + i * nb, nb, x, nb);
  for (; i < r1; i++) q8_0_rows<1, Dot>(y + i, w + i * nb, nb, x, nb);
}

template <typename Dot>
void q4_0_matvec(float* y, const BlockQ4_0* w, const BlockQ8_0* x, int n, int r0, int r1) {
  const int64_t nb = n / 32;
  int i = r0;
  for (; i + 4 <= r1; i += 4) q4_0_rows<4, Dot>(y + i, w + i * nb, nb, x, nb);
  for (; i < r1; i++) q4_0_rows<1, Dot>(y + i, w + i * nb, nb, x, nb);
}

}  // namespace

}  // namespace troupe::kernels::detail

#endif  // __aarch64__
