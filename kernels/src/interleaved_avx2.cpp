// AVX2 batched products over interleaved Q8_0 / Q4_0 blocks (kernels.hpp): interleaved_256.hpp's
// kernel with AVX2's byte multiply-adds. Compiled with the flags of matvec_avx2.cpp and only
// called when the CPU has them. (The copy of ggml blocks into that layout: loops_avx2.cpp.)
#include <immintrin.h>

#include <cstdint>

#include "interleaved_256.hpp"
#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

void matmul_q8_0x16_avx2(float* y, int ldy, const uint8_t* w, const Operand& x,
                         const XBlockSum* xs, int ldx, int n, int count, int r0, int r1) {
  const auto* xb = static_cast<const BlockQ8_0*>(x.data);
  x16_matmul<false, false>(y, ldy, w, xb, xs, ldx, n, count, r0, r1);
}
void matmul_q4_0x16_avx2(float* y, int ldy, const uint8_t* w, const Operand& x,
                         const XBlockSum* xs, int ldx, int n, int count, int r0, int r1) {
  const auto* xb = static_cast<const BlockQ8_0*>(x.data);
  x16_matmul<true, false>(y, ldy, w, xb, xs, ldx, n, count, r0, r1);
}

}  // namespace troupe::kernels::detail
