// Internal declarations shared by dispatch.cpp, weight_types.cpp and the per-ISA files: the
// entries of the kernel tables (kernels.hpp's TypeKernels / IsaKernels signatures).
//
// Declarations only, on purpose: an inline function defined here would be compiled once with
// AVX-512 flags and once without, and the linker may keep either copy for everyone.
#pragma once

#include <cstdint>

#include "troupe/kernels/kernels.hpp"

namespace troupe::kernels::detail {

// ---- Scalar reference (reference.cpp): run.c / runq.c's order of operations ----
//
// ggml's scalar order for its types: in-order float sum for f16; exact int32 block sums, then
// sum += (float)isum * (d_w * d_x) block by block for Q8_0 / Q4_0. The quantizers: Q8_0 d =
// max|x|/127, q = roundf(x/d); Q4_0 d = (the value of largest magnitude)/-8, q = min(15,
// (int8)(x/d + 8.5)); the llama2.c groups: quantize_q8 (kernels.hpp).
void matvec_f32_ref(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_f16_ref(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q8_0_ref(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q4_0_ref(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q8_groups_ref(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void quantize_row_f32(const Destination& y, const float* x, int n);
void quantize_row_f16(const Destination& y, const float* x, int n);
void quantize_row_q8_0_ref(const Destination& y, const float* x, int n);
void quantize_row_q4_0_ref(const Destination& y, const float* x, int n);
void quantize_row_q8_groups(const Destination& y, const float* x, int n);
void dequantize_row_f32(float* y, const Operand& x, int n);
void dequantize_row_f16_ref(float* y, const Operand& x, int n);  // the software conversion
void dequantize_row_q8_0_ref(float* y, const Operand& x, int n);
void dequantize_row_q4_0_ref(float* y, const Operand& x, int n);
void dequantize_row_q8_groups_ref(float* y, const Operand& x, int n);  // runq.c's: q * scale
// Attention over cached positions (kernels.hpp's key_scores, weighted_sums) and libm's expf per
// element; the SIMD paths below give their floats.
void key_scores_ref(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                    int queries, const float* keys, int count, int n, float scale);
void weighted_sums_ref(float* out, std::ptrdiff_t out_stride, const float* w,
                       std::ptrdiff_t w_stride, int queries, const float* rows,
                       std::ptrdiff_t stride, int count, int n);
void expf_elements_ref(float* y, const float* x, int n);

// ---- Interleaved blocks, reference (interleaved.cpp) ----
//
// The layout's loops (InterleavedLayout), the copy of whole groups, the x sums, and the products
// read back out of the groups token by token: the matvec's floats (correct, slow: for ISAs
// without kernels of their own, where the engine does not interleave).
void copy_groups_q8_0(uint8_t* dst, const void* src, int rows, std::size_t g0, std::size_t g1,
                      int nb);
void copy_groups_q4_0(uint8_t* dst, const void* src, int rows, std::size_t g0, std::size_t g1,
                      int nb);
void deinterleave_row_q8_0(void* row, const uint8_t* w, int r, int n);
void deinterleave_row_q4_0(void* row, const uint8_t* w, int r, int n);
void interleave_groups_q8_0_ref(uint8_t* dst, const void* src, int groups, int nb);
void interleave_groups_q4_0_ref(uint8_t* dst, const void* src, int groups, int nb);
void sum_x_blocks_ref(XBlockSum* out, const BlockQ8_0* x, int blocks, int offset);
void matmul_q8_0x16_ref(float* y, int ldy, const uint8_t* w, const Operand& x, const XBlockSum* xs,
                        int ldx, int n, int count, int r0, int r1);
void matmul_q4_0x16_ref(float* y, int ldy, const uint8_t* w, const Operand& x, const XBlockSum* xs,
                        int ldx, int n, int count, int r0, int r1);

#if defined(TROUPE_HAVE_X86_SIMD)
// ---- AVX2 with FMA and F16C (dispatch checks f16c with avx2) ----
// matvec_avx2.cpp
void matvec_f32_avx2(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_f16_avx2(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q8_0_avx2(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q4_0_avx2(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q8_groups_avx2(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matmul_f32_avx2(float* y, int ldy, const Operand& w, const Operand& x, int ldx, int n,
                     int count, int r0, int r1);
void matmul_q8_0_avx2(float* y, int ldy, const Operand& w, const Operand& x, int ldx, int n,
                      int count, int r0, int r1);
void matmul_q4_0_avx2(float* y, int ldy, const Operand& w, const Operand& x, int ldx, int n,
                      int count, int r0, int r1);
void dequantize_row_f16_f16c(float* y, const Operand& x, int n);  // all 65536 halves: the reference's
// interleaved_avx2.cpp
void matmul_q8_0x16_avx2(float* y, int ldy, const uint8_t* w, const Operand& x,
                         const XBlockSum* xs, int ldx, int n, int count, int r0, int r1);
void matmul_q4_0x16_avx2(float* y, int ldy, const uint8_t* w, const Operand& x,
                         const XBlockSum* xs, int ldx, int n, int count, int r0, int r1);
// loops_avx2.cpp (simd_loops.hpp on 8 floats)
void key_scores_avx2(float* out, std::ptrdiff_t out_stride, const float* q,
                     std::ptrdiff_t q_stride, int queries, const float* keys, int count, int n,
                     float scale);
void weighted_sums_avx2(float* out, std::ptrdiff_t out_stride, const float* w,
                        std::ptrdiff_t w_stride, int queries, const float* rows,
                        std::ptrdiff_t stride, int count, int n);
void expf_elements_avx2(float* y, const float* x, int n);
void interleave_groups_q8_0_avx2(uint8_t* dst, const void* src, int groups, int nb);
void interleave_groups_q4_0_avx2(uint8_t* dst, const void* src, int groups, int nb);

// ---- AVX2 with AVX-VNNI's 256-bit dot products (matvec_avxvnni.cpp, interleaved_avxvnni.cpp) ----
void matvec_q8_0_avxvnni(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q4_0_avxvnni(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matmul_q8_0x16_avxvnni(float* y, int ldy, const uint8_t* w, const Operand& x,
                            const XBlockSum* xs, int ldx, int n, int count, int r0, int r1);
void matmul_q4_0x16_avxvnni(float* y, int ldy, const uint8_t* w, const Operand& x,
                            const XBlockSum* xs, int ldx, int n, int count, int r0, int r1);

// ---- AVX-512 (F, BW, VL, VNNI) ----
// matvec_avx512.cpp
void matvec_f32_avx512(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_f16_avx512(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q8_0_avx512(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q4_0_avx512(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q8_groups_avx512(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matmul_f32_avx512(float* y, int ldy, const Operand& w, const Operand& x, int ldx, int n,
                       int count, int r0, int r1);
void matmul_q8_0_avx512(float* y, int ldy, const Operand& w, const Operand& x, int ldx, int n,
                        int count, int r0, int r1);
void matmul_q4_0_avx512(float* y, int ldy, const Operand& w, const Operand& x, int ldx, int n,
                        int count, int r0, int r1);
// quantize_avx512.cpp: the reference's bytes
void quantize_row_q8_0_avx512(const Destination& y, const float* x, int n);
// interleaved_avx512.cpp
void matmul_q8_0x16_avx512(float* y, int ldy, const uint8_t* w, const Operand& x,
                           const XBlockSum* xs, int ldx, int n, int count, int r0, int r1);
void matmul_q4_0x16_avx512(float* y, int ldy, const uint8_t* w, const Operand& x,
                           const XBlockSum* xs, int ldx, int n, int count, int r0, int r1);
void sum_x_blocks_avx512(XBlockSum* out, const BlockQ8_0* x, int blocks, int offset);
// loops_avx512.cpp (simd_loops.hpp on 16 floats)
void key_scores_avx512(float* out, std::ptrdiff_t out_stride, const float* q,
                       std::ptrdiff_t q_stride, int queries, const float* keys, int count, int n,
                       float scale);
void weighted_sums_avx512(float* out, std::ptrdiff_t out_stride, const float* w,
                          std::ptrdiff_t w_stride, int queries, const float* rows,
                          std::ptrdiff_t stride, int count, int n);
void expf_elements_avx512(float* y, const float* x, int n);
void interleave_groups_q8_0_avx512(uint8_t* dst, const void* src, int groups, int nb);
void interleave_groups_q4_0_avx512(uint8_t* dst, const void* src, int groups, int nb);
#endif

#if defined(TROUPE_HAVE_NEON)
// ---- NEON (matvec_neon.cpp; the _dotprod ones in matvec_neon_dotprod.cpp) ----
// The _dotprod ones need the dot-product extension (sdot), which not every ARMv8 core has; the
// others are plain ARMv8 NEON (widening multiplies).
void matvec_f32_neon(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_f16_neon(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q8_0_neon_dotprod(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q4_0_neon_dotprod(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q8_groups_neon_dotprod(float* y, const Operand& w, const Operand& x, int n, int r0,
                                   int r1);
void matvec_q8_0_neon(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q4_0_neon(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
void matvec_q8_groups_neon(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
#endif

}  // namespace troupe::kernels::detail
