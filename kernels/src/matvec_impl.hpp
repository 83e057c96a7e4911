// Internal declarations shared by dispatch.cpp and the per-ISA matvec files.
//
// Declarations only, on purpose: an inline function defined here would be compiled once with
// AVX-512 flags and once without, and the linker may keep either copy for everyone.
#pragma once

#include <cstdint>

namespace troupe::kernels::detail {

// Scalar reference (reference.cpp): run.c / runq.c order of operations.
void matvec_f32_ref(float* y, const float* w, const float* x, int n, int r0, int r1);
void matvec_q8_ref(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs,
                   int n, int gs, int r0, int r1);

#if defined(TROUPE_HAVE_X86_SIMD)
void matvec_f32_avx2(float* y, const float* w, const float* x, int n, int r0, int r1);
void matvec_q8_avx2(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs,
                    int n, int gs, int r0, int r1);
void matvec_f32_avx512(float* y, const float* w, const float* x, int n, int r0, int r1);
void matvec_q8_avx512(float* y, const int8_t* wq, const float* ws, const int8_t* xq,
                      const float* xs, int n, int gs, int r0, int r1);
#endif

#if defined(TROUPE_HAVE_NEON)
void matvec_f32_neon(float* y, const float* w, const float* x, int n, int r0, int r1);
// Needs the dot-product extension (sdot), which not every ARMv8 core has.
void matvec_q8_neon_dotprod(float* y, const int8_t* wq, const float* ws, const int8_t* xq,
                            const float* xs, int n, int gs, int r0, int r1);
// Plain ARMv8 NEON (widening multiplies), for cores without sdot.
void matvec_q8_neon(float* y, const int8_t* wq, const float* ws, const int8_t* xq,
                    const float* xs, int n, int gs, int r0, int r1);
#endif

}  // namespace troupe::kernels::detail
