// Internal declarations shared by dispatch.cpp and the per-ISA matvec files.
//
// Declarations only, on purpose: an inline function defined here would be compiled once with
// AVX-512 flags and once without, and the linker may keep either copy for everyone.
#pragma once

#include <cstdint>

#include "troupe/kernels/kernels.hpp"

namespace troupe::kernels::detail {

// Scalar reference (reference.cpp): run.c / runq.c order of operations.
void matvec_f32_ref(float* y, const float* w, const float* x, int n, int r0, int r1);
void matvec_q8_ref(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs,
                   int n, int gs, int r0, int r1);
// ggml's scalar order: in-order float sum for f16; exact int32 block sums, then
// sum += (float)isum * (d_w * d_x) block by block for Q8_0 / Q4_0.
void matvec_f16_ref(float* y, const uint16_t* w, const float* x, int n, int r0, int r1);
void matvec_q8_0_ref(float* y, const BlockQ8_0* w, const BlockQ8_0* x, int n, int r0, int r1);
void matvec_q4_0_ref(float* y, const BlockQ4_0* w, const BlockQ8_0* x, int n, int r0, int r1);
// Attention over cached positions (kernels.hpp's key_scores, weighted_sums): reference.cpp's
// loops and AVX2 / AVX-512 paths that give their floats, lanes being positions / columns
// (simd_loops.hpp, instantiated by loops_avx2.cpp and loops_avx512.cpp).
void key_scores_ref(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                    int queries, const float* keys, int count, int n, float scale);
void weighted_sums_ref(float* out, std::ptrdiff_t out_stride, const float* w,
                       std::ptrdiff_t w_stride, int queries, const float* rows,
                       std::ptrdiff_t stride, int count, int n);
#if defined(TROUPE_HAVE_X86_SIMD)
void key_scores_avx512(float* out, std::ptrdiff_t out_stride, const float* q,
                       std::ptrdiff_t q_stride, int queries, const float* keys, int count, int n,
                       float scale);
void weighted_sums_avx512(float* out, std::ptrdiff_t out_stride, const float* w,
                          std::ptrdiff_t w_stride, int queries, const float* rows,
                          std::ptrdiff_t stride, int count, int n);
void key_scores_avx2(float* out, std::ptrdiff_t out_stride, const float* q,
                     std::ptrdiff_t q_stride, int queries, const float* keys, int count, int n,
                     float scale);
void weighted_sums_avx2(float* out, std::ptrdiff_t out_stride, const float* w,
                        std::ptrdiff_t w_stride, int queries, const float* rows,
                        std::ptrdiff_t stride, int count, int n);
#endif

// quantize_row_q8_0: the reference (reference.cpp) and, with its bytes, AVX-512
// (quantize_avx512.cpp).
void quantize_row_q8_0_ref(BlockQ8_0* y, const float* x, int n);
#if defined(TROUPE_HAVE_X86_SIMD)
void quantize_row_q8_0_avx512(BlockQ8_0* y, const float* x, int n);
#endif

// dequantize_row_f16: the software conversion (reference.cpp) and F16C's (matvec_avx2.cpp), the
// same floats (tests compare all 65536 halves).
void dequantize_row_f16_ref(float* y, const uint16_t* x, int n);
#if defined(TROUPE_HAVE_X86_SIMD)
void dequantize_row_f16_f16c(float* y, const uint16_t* x, int n);
#endif

// expf_elements: libm's expf per element (reference.cpp) and, with its floats, AVX2 and AVX-512
// (simd_loops.hpp, as attention's loops).
void expf_elements_ref(float* y, const float* x, int n);
#if defined(TROUPE_HAVE_X86_SIMD)
void expf_elements_avx512(float* y, const float* x, int n);
void expf_elements_avx2(float* y, const float* x, int n);
#endif

// Interleaved blocks (interleaved.cpp): the same floats, read out of the groups; the reference
// copy of whole groups and x sums (MatmulOps' interleave_groups_*, sum_x_blocks).
void matvec_q8_0x16_ref(float* y, const uint8_t* w, const BlockQ8_0* x, int n, int r0, int r1);
void matvec_q4_0x16_ref(float* y, const uint8_t* w, const BlockQ8_0* x, int n, int r0, int r1);
void interleave_groups_q8_0_ref(uint8_t* dst, const BlockQ8_0* src, int groups, int nb);
void interleave_groups_q4_0_ref(uint8_t* dst, const BlockQ4_0* src, int groups, int nb);
void sum_x_blocks_ref(XBlockSum* out, const BlockQ8_0* x, int blocks, int offset);

#if defined(TROUPE_HAVE_X86_SIMD)
void matvec_f32_avx2(float* y, const float* w, const float* x, int n, int r0, int r1);
void matvec_q8_avx2(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs,
                    int n, int gs, int r0, int r1);
void matvec_f32_avx512(float* y, const float* w, const float* x, int n, int r0, int r1);
void matvec_q8_avx512(float* y, const int8_t* wq, const float* ws, const int8_t* xq,
                      const float* xs, int n, int gs, int r0, int r1);
// AVX2 + F16C (dispatch checks f16c with avx2).
void matvec_f16_avx2(float* y, const uint16_t* w, const float* x, int n, int r0, int r1);
void matvec_q8_0_avx2(float* y, const BlockQ8_0* w, const BlockQ8_0* x, int n, int r0, int r1);
void matvec_q4_0_avx2(float* y, const BlockQ4_0* w, const BlockQ8_0* x, int n, int r0, int r1);
void matvec_f16_avx512(float* y, const uint16_t* w, const float* x, int n, int r0, int r1);
void matvec_q8_0_avx512(float* y, const BlockQ8_0* w, const BlockQ8_0* x, int n, int r0, int r1);
void matvec_q4_0_avx512(float* y, const BlockQ4_0* w, const BlockQ8_0* x, int n, int r0, int r1);
// Interleaved blocks (interleaved_avx512.cpp).
void matmul_q8_0x16_avx512(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x,
                           const XBlockSum* xs, int ldx_blocks, int n, int count, int r0, int r1);
void matmul_q4_0x16_avx512(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x,
                           const XBlockSum* xs, int ldx_blocks, int n, int count, int r0, int r1);
// The same over AVX2 (interleaved_avx2.cpp).
void matmul_q8_0x16_avx2(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x,
                         const XBlockSum* xs, int ldx_blocks, int n, int count, int r0, int r1);
void matmul_q4_0x16_avx2(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x,
                         const XBlockSum* xs, int ldx_blocks, int n, int count, int r0, int r1);
// And with AVX-VNNI's 256-bit dot products (matvec_avxvnni.cpp, interleaved_avxvnni.cpp).
void matvec_q8_0_avxvnni(float* y, const BlockQ8_0* w, const BlockQ8_0* x, int n, int r0, int r1);
void matvec_q4_0_avxvnni(float* y, const BlockQ4_0* w, const BlockQ8_0* x, int n, int r0, int r1);
void matmul_q8_0x16_avxvnni(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x,
                            const XBlockSum* xs, int ldx_blocks, int n, int count, int r0, int r1);
void matmul_q4_0x16_avxvnni(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x,
                            const XBlockSum* xs, int ldx_blocks, int n, int count, int r0, int r1);
void interleave_groups_q8_0_avx2(uint8_t* dst, const BlockQ8_0* src, int groups, int nb);
void interleave_groups_q4_0_avx2(uint8_t* dst, const BlockQ4_0* src, int groups, int nb);
// sum_x_blocks_q8_0x16 / _q4_0x16 (offset 128 / 8).
void sum_x_blocks_avx512(XBlockSum* out, const BlockQ8_0* x, int blocks, int offset);
// Whole groups (16 real rows each, nb blocks a row) into the layout: interleave_q8_0's bytes.
void interleave_groups_q8_0_avx512(uint8_t* dst, const BlockQ8_0* src, int groups, int nb);
void interleave_groups_q4_0_avx512(uint8_t* dst, const BlockQ4_0* src, int groups, int nb);
// Batched (MatmulOps): each output the same ISA's matvec's, bit for bit.
void matmul_f32_avx2(float* y, int ldy, const float* w, const float* x, int ldx, int n, int count,
                     int r0, int r1);
void matmul_q8_0_avx2(float* y, int ldy, const BlockQ8_0* w, const BlockQ8_0* x, int ldx_blocks,
                      int n, int count, int r0, int r1);
void matmul_q4_0_avx2(float* y, int ldy, const BlockQ4_0* w, const BlockQ8_0* x, int ldx_blocks,
                      int n, int count, int r0, int r1);
void matmul_f32_avx512(float* y, int ldy, const float* w, const float* x, int ldx, int n,
                       int count, int r0, int r1);
void matmul_q8_0_avx512(float* y, int ldy, const BlockQ8_0* w, const BlockQ8_0* x, int ldx_blocks,
                        int n, int count, int r0, int r1);
void matmul_q4_0_avx512(float* y, int ldy, const BlockQ4_0* w, const BlockQ8_0* x, int ldx_blocks,
                        int n, int count, int r0, int r1);
#endif

#if defined(TROUPE_HAVE_NEON)
void matvec_f32_neon(float* y, const float* w, const float* x, int n, int r0, int r1);
// Needs the dot-product extension (sdot), which not every ARMv8 core has.
void matvec_q8_neon_dotprod(float* y, const int8_t* wq, const float* ws, const int8_t* xq,
                            const float* xs, int n, int gs, int r0, int r1);
// Plain ARMv8 NEON (widening multiplies), for cores without sdot.
void matvec_q8_neon(float* y, const int8_t* wq, const float* ws, const int8_t* xq,
                    const float* xs, int n, int gs, int r0, int r1);
void matvec_f16_neon(float* y, const uint16_t* w, const float* x, int n, int r0, int r1);
void matvec_q8_0_neon_dotprod(float* y, const BlockQ8_0* w, const BlockQ8_0* x, int n, int r0,
                              int r1);
void matvec_q4_0_neon_dotprod(float* y, const BlockQ4_0* w, const BlockQ8_0* x, int n, int r0,
                              int r1);
void matvec_q8_0_neon(float* y, const BlockQ8_0* w, const BlockQ8_0* x, int n, int r0, int r1);
void matvec_q4_0_neon(float* y, const BlockQ4_0* w, const BlockQ8_0* x, int n, int r0, int r1);
#endif

}  // namespace troupe::kernels::detail
