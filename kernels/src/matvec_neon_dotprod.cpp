// NEON int8 products with the dot-product extension (sdot, ARMv8.2 +dotprod; Isa::neon_dotprod),
// built with -march=armv8.2-a+dotprod and called only when the CPU has it (dispatch.cpp). The
// loops are matvec_neon.cpp's (matvec_neon_int8.hpp), only the 16-byte step differs, so results
// are bit-identical to the reference as there.
#if defined(__aarch64__)

#include <arm_neon.h>

#include <cstdint>

#include "matvec_impl.hpp"
#include "matvec_neon_int8.hpp"

namespace troupe::kernels::detail {

namespace {

// One 16-byte step of an exact int8 dot product into int32 lanes.
struct DotSdot {
  static int32x4_t step(int32x4_t acc, int8x16_t w, int8x16_t x) { return vdotq_s32(acc, w, x); }
};

}  // namespace

void matvec_q8_groups_neon_dotprod(float* y, const Operand& w, const Operand& x, int n, int r0,
                                   int r1) {
  q8_matvec<DotSdot>(y, static_cast<const int8_t*>(w.data), w.scales,
                     static_cast<const int8_t*>(x.data), x.scales, n, w.group_size, r0, r1);
}

void matvec_q8_0_neon_dotprod(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  q8_0_matvec<DotSdot>(y, static_cast<const BlockQ8_0*>(w.data),
                       static_cast<const BlockQ8_0*>(x.data), n, r0, r1);
}

void matvec_q4_0_neon_dotprod(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  q4_0_matvec<DotSdot>(y, static_cast<const BlockQ4_0*>(w.data),
                       static_cast<const BlockQ8_0*>(x.data), n, r0, r1);
}

}  // namespace troupe::kernels::detail

#endif  // __aarch64__
