// simd_loops.hpp's loops over portable vectors of 8 and 16 lanes (loops_portable.cpp: plain
// arrays, no ISA flags): the logic of the AVX2 (8) and AVX-512 (16) builds, for the tests to check
// against the reference on any CPU. Not used by the engine.
#pragma once

#include <cstddef>
#include <cstdint>

#include "troupe/kernels/kernels.hpp"

namespace troupe::kernels::detail {

// W is 8 or 16.
template <int W>
void key_scores_portable(float* out, std::ptrdiff_t out_stride, const float* q,
                         std::ptrdiff_t q_stride, int queries, const float* keys, int count, int n,
                         float scale);
template <int W>
void weighted_sums_portable(float* out, std::ptrdiff_t out_stride, const float* w,
                            std::ptrdiff_t w_stride, int queries, const float* rows,
                            std::ptrdiff_t stride, int count, int n);
template <int W>
void expf_elements_portable(float* y, const float* x, int n);
template <int W>
void interleave_groups_q8_0_portable(uint8_t* dst, const void* src, int groups, int nb);
template <int W>
void interleave_groups_q4_0_portable(uint8_t* dst, const void* src, int groups, int nb);

}  // namespace troupe::kernels::detail
