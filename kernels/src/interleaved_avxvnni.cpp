// AVX2 + AVX-VNNI batched products over interleaved Q8_0 / Q4_0 blocks (kernels.hpp):
// interleaved_256.hpp's kernel with the 256-bit vpdpbusd, for CPUs with AVX-VNNI and no AVX-512
// (Intel's client cores since Alder Lake). Compiled with -mavxvnni besides matvec_avx2.cpp's flags
// and only called when the CPU has it; the copy into the layout is AVX2's.
#include <immintrin.h>

#include <cstdint>

#include "interleaved_256.hpp"
#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

void matmul_q8_0x16_avxvnni(float* y, int ldy, const uint8_t* w, const Operand& x,
                            const XBlockSum* xs, int ldx, int n, int count, int r0, int r1) {
  const auto* xb = static_cast<const BlockQ8_0*>(x.data);
  x16_matmul<false, true>(y, ldy, w, xb, xs, ldx, n, count, r0, r1);
}
void matmul_q4_0x16_avxvnni(float* y, int ldy, const uint8_t* w, const Operand& x,
                            const XBlockSum* xs, int ldx, int n, int count, int r0, int r1) {
  const auto* xb = static_cast<const BlockQ8_0*>(x.data);
  x16_matmul<true, true>(y, ldy, w, xb, xs, ldx, n, count, r0, r1);
}

}  // namespace troupe::kernels::detail
