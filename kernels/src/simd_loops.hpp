// The loops AVX2 and AVX-512 run alike, written once over the vector width: attention's key_scores
// and weighted_sums (kernels.hpp), expf_elements, and the copy of ggml blocks into interleaved
// groups. Instantiated by loops_avx2.cpp (8 floats a vector), loops_avx512.cpp (16) and
// loops_portable.cpp (8 and 16 as plain arrays, no ISA flags: the tests run the logic of both
// x86 builds on any CPU through it).
//
// A width is a traits type V of thin primitives, each one instruction or a few with one plain
// meaning (the x86 files hold theirs side by side with the portable ones to compare):
//   kLanes            floats (32-bit lanes) a vector: 8 or 16; kLanes / 16 of a key block
//   kAccumulators     accumulators weighted_sums keeps at most (half the vector registers)
//   F, Mask           a vector of floats; which of its lanes are live
//   I                 a vector of kLanes 32-bit integers, 128-bit lanes of 4 for the unpacks
//   D, L, H           kLanes / 2 doubles, their 64-bit integers, kLanes / 2 floats (exp's halves)
//   zero set1 loadu storeu add mul div         on F, lane by lane, IEEE single (no contraction)
//   first(live) load(p, m) store(p, m, v)      lanes < live (live may be <= 0 or > kLanes);
//                                              masked lanes are neither read nor written (load: 0)
//   bits set1i srli<N> band gt                 on I; gt gives one bit a lane (lane j: bit j)
//   set1_u8 bxor loadu_rows storeu_i           loadu_rows(p, s): 16 bytes from p + k * s into
//   unpacklo32 unpackhi32 unpacklo64 unpackhi64  128-bit lane k; the unpacks as SSE's, per lane
//   widen_lo widen_hi narrow join              F halves to D exactly, D to H rounded, H's to F
//   set1d subd muld fmadd fmsub                on D, IEEE double; fmadd a * b + c, fmsub
//                                              a * b - c, each rounded once
//   bits_d from_bits add64 shl64<N> exp2_lookup on L; exp2_lookup(k) = kExp2Table[k & 31]
//
// Everything here is in an unnamed namespace: each file gets its own copy, compiled with its own
// flags (matvec_impl.hpp says why nothing inline may be shared between such files).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "exp_table.hpp"
#include "query_groups.hpp"
#include "troupe/kernels/kernels.hpp"

namespace troupe::kernels::detail {
namespace {

// ---- Attention (kernels.hpp's key_scores, weighted_sums) ----
//
// Each lane runs the reference's chain for one position or one column, with the same operations
// in the same order (a multiply, then an add; no contraction), so the floats are the reference's
// bit for bit. Speed comes from running many chains at once: the queries that share a key head
// (grouped-query attention), and for a lone query several vectors of keys, so that the adds'
// latency hides behind each other.

// Q queries against the B vectors of keys from vector u (a key block is kKeyBlock / kLanes of
// them): Q * B chains of n steps, side by side.
template <class V, int Q, int B>
void scores_tile(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                 const float* keys, int u, int count, int n, float scale) {
  using F = typename V::F;
  constexpr int kPerBlock = kKeyBlock / V::kLanes;
  F acc[Q][B];
  const float* key_vector[B];
#pragma GCC unroll 8
  for (int j = 0; j < B; j++) {
    key_vector[j] = keys + std::ptrdiff_t((u + j) / kPerBlock) * n * kKeyBlock +
                    ((u + j) % kPerBlock) * V::kLanes;
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) acc[k][j] = V::zero();
  }
  for (int i = 0; i < n; i++) {
    F key[B];
#pragma GCC unroll 8
    for (int j = 0; j < B; j++) key[j] = V::loadu(key_vector[j] + std::ptrdiff_t(i) * kKeyBlock);
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) {
      const F a = V::set1(q[k * q_stride + i]);
#pragma GCC unroll 8
      for (int j = 0; j < B; j++) acc[k][j] = V::add(acc[k][j], V::mul(a, key[j]));
    }
  }
  const F s = V::set1(scale);
#pragma GCC unroll 8
  for (int j = 0; j < B; j++) {
    const int pos = (u + j) * V::kLanes;
    const typename V::Mask m = V::first(count - pos);
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) V::store(out + k * out_stride + pos, m, V::div(acc[k][j], s));
  }
}

// Q queries against every vector of keys: 8 chains a pass (Q * B = 8), single vectors at the end.
template <class V, int Q>
void scores_queries(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                    const float* keys, int count, int n, float scale) {
  constexpr int B = 8 / Q;
  const int vectors = (count + V::kLanes - 1) / V::kLanes;
  int u = 0;
  for (; u + B <= vectors; u += B) {
    scores_tile<V, Q, B>(out, out_stride, q, q_stride, keys, u, count, n, scale);
  }
  for (; u < vectors; u++) scores_tile<V, Q, 1>(out, out_stride, q, q_stride, keys, u, count, n, scale);
}

// Q weight vectors against the C column vectors from column i0: Q * C chains of count steps.
template <class V, int Q, int C>
void sums_tile(float* out, std::ptrdiff_t out_stride, const float* w, std::ptrdiff_t w_stride,
               const float* rows, std::ptrdiff_t stride, int count, int n, int i0) {
  using F = typename V::F;
  typename V::Mask m[C];
  F acc[Q][C];
#pragma GCC unroll 4
  for (int c = 0; c < C; c++) {
    m[c] = V::first(n - i0 - V::kLanes * c);
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) acc[k][c] = V::zero();
  }
  for (int r = 0; r < count; r++) {
    const float* row = rows + r * stride + i0;
    F v[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) v[c] = V::load(row + V::kLanes * c, m[c]);
#pragma GCC unroll 8
    for (int k = 0; k < Q; k++) {
      const F a = V::set1(w[k * w_stride + r]);
#pragma GCC unroll 4
      for (int c = 0; c < C; c++) acc[k][c] = V::add(acc[k][c], V::mul(a, v[c]));
    }
  }
#pragma GCC unroll 8
  for (int k = 0; k < Q; k++) {
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) V::store(out + k * out_stride + i0 + V::kLanes * c, m[c], acc[k][c]);
  }
}

// At most kAccumulators accumulators a pass, and at most 4 columns: 8 vectors x 1 column of 8
// floats, 4 x 2, 2 x 4, 1 x 4 (AVX2); 8 x 2 of 16, 4 x 4, ... (AVX-512).
template <class V, int Q>
void sums_queries(float* out, std::ptrdiff_t out_stride, const float* w, std::ptrdiff_t w_stride,
                  const float* rows, std::ptrdiff_t stride, int count, int n) {
  constexpr int C = std::min(4, V::kAccumulators / Q);
  for (int i0 = 0; i0 < n; i0 += V::kLanes * C) {
    sums_tile<V, Q, C>(out, out_stride, w, w_stride, rows, stride, count, n, i0);
  }
}

template <class V>
void key_scores_simd(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                     int queries, const float* keys, int count, int n, float scale) {
  for_query_groups(queries, [&](auto group, int k) {
    constexpr int Q = decltype(group)::value;
    scores_queries<V, Q>(out + k * out_stride, out_stride, q + k * q_stride, q_stride, keys, count,
                         n, scale);
  });
}

template <class V>
void weighted_sums_simd(float* out, std::ptrdiff_t out_stride, const float* w,
                        std::ptrdiff_t w_stride, int queries, const float* rows,
                        std::ptrdiff_t stride, int count, int n) {
  for_query_groups(queries, [&](auto group, int k) {
    constexpr int Q = decltype(group)::value;
    sums_queries<V, Q>(out + k * out_stride, out_stride, w + k * w_stride, w_stride, rows, stride,
                       count, n);
  });
}

// ---- expf_elements: glibc's expf bit for bit ----
//
// run.c's softmax and SwiGLU call libm's expf once per element (~6% of a prompt and a serial
// piece of every generated token). glibc (2.28 on) computes expf in double precision from a
// 32-entry table of 2^(i/32) and a cubic; on CPUs with FMA its ifunc picks the build compiled
// with FMA contraction (__expf_fma), which rounds exactly as the steps below: the same doubles,
// the same fused operations in the same places, so the same float at the end. Checked against
// libm over all 2^32 inputs (tests sample them). Inputs with |x| >= 88 or NaN take glibc's own
// special-case path in libm, lane by lane.

// exp of kLanes / 2 doubles (converted floats with |x| < 88) rounded to floats.
template <class V>
[[gnu::always_inline]] inline typename V::H exp_half(typename V::D x) {
  using D = typename V::D;
  const D inv_ln2_32 = V::set1d(0x1.71547652b82fep+0 * 32);  // 32 / ln 2
  const D shift = V::set1d(0x1.8p+52);  // adding it rounds to an integer
  const D c0 = V::set1d(0x1.c6af84b912394p-5 / 32 / 32 / 32);
  const D c1 = V::set1d(0x1.ebfce50fac4f3p-3 / 32 / 32);
  const D c2 = V::set1d(0x1.62e42ff0c52d6p-1 / 32);
  // x * 32 / ln 2 = k + r, k an integer (in kd's low bits, and as a double), |r| <= 1/2.
  D kd = V::fmadd(inv_ln2_32, x, shift);
  const typename V::L k = V::bits_d(kd);
  kd = V::subd(kd, shift);
  const D r = V::fmsub(inv_ln2_32, x, kd);
  // s = 2^(k/32): the table entry of k % 32, plus k << 47 (the exponent gets k / 32).
  const D s = V::from_bits(V::add64(V::exp2_lookup(k), V::template shl64<47>(k)));
  // 2^(r/32) ~ (c0 r + c1) r^2 + (c2 r + 1)
  const D z = V::fmadd(c0, r, c1);
  const D r2 = V::muld(r, r);
  D y = V::fmadd(c2, r, V::set1d(1.0));
  y = V::fmadd(z, r2, y);
  return V::narrow(V::muld(y, s));
}

template <class V>
void expf_elements_simd(float* y, const float* x, int n) {
  using I = typename V::I;
  int i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) {
    const typename V::F v = V::loadu(x + i);
    const typename V::F e = V::join(exp_half<V>(V::widen_lo(v)), exp_half<V>(V::widen_hi(v)));
    // glibc's test for its special cases: the exponent and top mantissa bits of |x| past 88's.
    const I top = V::band(V::template srli<20>(V::bits(v)), V::set1i(0x7ff));
    unsigned special = V::gt(top, V::set1i(0x42a));
    alignas(64) float in[V::kLanes];
    if (special) V::storeu(in, v);  // y may alias x
    V::storeu(y + i, e);
    for (; special; special &= special - 1) {
      const int j = __builtin_ctz(special);
      y[i + j] = expf(in[j]);
    }
  }
  for (; i < n; i++) y[i] = expf(x[i]);
}

// ---- Copying ggml blocks into interleaved groups (kernels.hpp) ----
//
// The reference's bytes (interleaved.cpp's loops): a transpose of 32-bit words in registers, rows
// kLanes at a time.

// A prefetch address past the end of the matrix is never dereferenced; formed as an integer.
const char* address_ahead(const void* p, int64_t bytes) {
  return reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes));
}

// 16 bytes of each of kLanes rows (p + r * stride) -> 4 vectors, vector k holding bytes
// 4k..4k+3 of row r in 32-bit lane r: a kLanes x 4 transpose of 32-bit words. 128-bit lane L
// of a[j] takes row 4L + j, so that the two rounds of unpacks leave every row in its own lane
// with no final permute.
template <class V>
[[gnu::always_inline]] inline void transpose_x4(typename V::I out[4], const uint8_t* p, int64_t stride) {
  using I = typename V::I;
  I a[4];
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) a[j] = V::loadu_rows(p + j * stride, 4 * stride);
  const I t0 = V::unpacklo32(a[0], a[1]), t1 = V::unpackhi32(a[0], a[1]);
  const I t2 = V::unpacklo32(a[2], a[3]), t3 = V::unpackhi32(a[2], a[3]);
  out[0] = V::unpacklo64(t0, t2);
  out[1] = V::unpackhi64(t0, t2);
  out[2] = V::unpacklo64(t1, t3);
  out[3] = V::unpackhi64(t1, t3);
}

// Whole groups (16 rows of nb blocks each) of Q8_0 / Q4_0 blocks into the layout.
template <class V, typename Block>
void interleave_groups_simd(uint8_t* dst, const Block* src, int groups, int nb) {
  using I = typename V::I;
  constexpr bool q4 = sizeof(Block) == sizeof(BlockQ4_0);
  constexpr int64_t quants = q4 ? int64_t(kQuantsQ4_0x16) : int64_t(kQuantsQ8_0x16);
  constexpr int kParts = kInterleave / V::kLanes;  // transposes a block of the group's rows
  const int64_t stride = int64_t(nb) * int64_t(sizeof(Block));  // bytes from a row to the next
  const I bias = V::set1_u8(0x80);
  for (int g = 0; g < groups; g++) {
    uint8_t* group = dst + int64_t(g) * nb * (quants + int64_t(kScalesX16));
    const auto* rows = reinterpret_cast<const uint8_t*>(src + int64_t(g) * kInterleave * nb);
    for (int b = 0; b < nb; b++) {
      const uint8_t* block = rows + int64_t(b) * int64_t(sizeof(Block));
      if (q4 ? b % 2 == 0 : true) {  // the same block of the next group's rows, into L2
        for (int r = 0; r < kInterleave; r++) {
          __builtin_prefetch(address_ahead(block, (kInterleave + r) * stride), 0, 2);
        }
      }
      uint8_t* q = group + b * quants;
      auto* scales = reinterpret_cast<uint16_t*>(group + nb * quants) + b * kInterleave;
      for (int part = 0; part < kParts; part++) {
        const uint8_t* at = block + V::kLanes * part * stride;
        uint8_t* to = q + 4 * V::kLanes * part;
        I piece[4];
        transpose_x4<V>(piece, at + 2, stride);  // quants start after the 2-byte scale
        if constexpr (q4) {
#pragma GCC unroll 4
          for (int k = 0; k < 4; k++) V::storeu_i(to + 64 * k, piece[k]);
        } else {  // two rounds of 16 bytes; the quants made unsigned (q + 128)
#pragma GCC unroll 4
          for (int k = 0; k < 4; k++) V::storeu_i(to + 64 * k, V::bxor(piece[k], bias));
          transpose_x4<V>(piece, at + 18, stride);
#pragma GCC unroll 4
          for (int k = 0; k < 4; k++) V::storeu_i(to + 64 * (4 + k), V::bxor(piece[k], bias));
        }
        // The rows' fp16 scales one by one (a 16-lane vpgatherdd made the whole copy ~10% slower
        // on Zen 4).
#pragma GCC unroll 16
        for (int r = 0; r < V::kLanes; r++) std::memcpy(scales + V::kLanes * part + r, at + r * stride, 2);
      }
    }
  }
}

}  // namespace
}  // namespace troupe::kernels::detail
