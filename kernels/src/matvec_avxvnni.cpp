// AVX2 + AVX-VNNI Q8_0 / Q4_0 matvec: matvec_blocks_256.hpp's kernel with the 256-bit vpdpbusd,
// for CPUs with AVX-VNNI and no AVX-512 (Intel's client cores since Alder Lake). Compiled with
// -mavxvnni besides matvec_avx2.cpp's flags and only called when the CPU has it.
#include <immintrin.h>

#include <cstdint>

#include "matvec_blocks_256.hpp"
#include "matvec_impl.hpp"

namespace troupe::kernels::detail {

void matvec_q8_0_avxvnni(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  blocks_matvec<BlockQ8_0, false, true>(y, static_cast<const BlockQ8_0*>(w.data),
                                        static_cast<const BlockQ8_0*>(x.data), n, r0, r1);
}

void matvec_q4_0_avxvnni(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  blocks_matvec<BlockQ4_0, true, true>(y, static_cast<const BlockQ4_0*>(w.data),
                                       static_cast<const BlockQ8_0*>(x.data), n, r0, r1);
}

}  // namespace troupe::kernels::detail
