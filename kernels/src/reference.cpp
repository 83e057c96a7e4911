// Scalar reference kernels. Each loop mirrors llama2.c's run.c (runq.c for q8) statement by
// statement so that, built with -ffp-contract=off and no fast-math, it yields the same floats.
// The ggml block formats (Q8_0, Q4_0, fp16) follow ggml's reference C code the same way.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "matvec_impl.hpp"
#include "troupe/kernels/kernels.hpp"

namespace troupe::kernels {

namespace detail {

void matvec_f32_ref(float* y, const Operand& wo, const Operand& xo, int n, int r0, int r1) {
  const auto* w = static_cast<const float*>(wo.data);
  const auto* x = static_cast<const float*>(xo.data);
  for (int i = r0; i < r1; i++) {
    const float* row = w + static_cast<int64_t>(i) * n;  // rows * n can pass 2^31
    float val = 0.0f;
    for (int j = 0; j < n; j++) val += row[j] * x[j];
    y[i] = val;
  }
}

void matvec_q8_groups_ref(float* y, const Operand& w, const Operand& x, int n, int r0, int r1) {
  const auto* wq = static_cast<const int8_t*>(w.data);
  const auto* xq = static_cast<const int8_t*>(x.data);
  const float* ws = w.scales;
  const float* xs = x.scales;
  const int gs = w.group_size;
  for (int i = r0; i < r1; i++) {
    const int64_t in = static_cast<int64_t>(i) * n;
    float val = 0.0f;
    for (int j = 0; j + gs <= n; j += gs) {
      int32_t ival = 0;
      for (int k = 0; k < gs; k++) {
        ival += static_cast<int32_t>(xq[j + k]) * static_cast<int32_t>(wq[in + j + k]);
      }
      val += static_cast<float>(ival) * ws[(in + j) / gs] * xs[j / gs];
    }
    y[i] = val;
  }
}

void matvec_f16_ref(float* y, const Operand& wo, const Operand& xo, int n, int r0, int r1) {
  const auto* w = static_cast<const uint16_t*>(wo.data);
  const auto* x = static_cast<const float*>(xo.data);
  for (int i = r0; i < r1; i++) {
    const uint16_t* row = w + static_cast<int64_t>(i) * n;
    float val = 0.0f;
    for (int j = 0; j < n; j++) val += fp16_to_fp32(row[j]) * x[j];
    y[i] = val;
  }
}

// ggml's scalar vec_dot_q8_0_q8_0 / vec_dot_q4_0_q8_0 per row: exact int32 block sums, then
// sum += (float)isum * (d_w * d_x) block by block.
void matvec_q8_0_ref(float* y, const Operand& wo, const Operand& xo, int n, int r0, int r1) {
  const auto* w = static_cast<const BlockQ8_0*>(wo.data);
  const auto* x = static_cast<const BlockQ8_0*>(xo.data);
  const int nb = n / kBlock;
  for (int i = r0; i < r1; i++) {
    const BlockQ8_0* row = w + static_cast<int64_t>(i) * nb;
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
      int32_t isum = 0;
      for (int j = 0; j < kBlock; j++) {
        isum += static_cast<int32_t>(row[b].qs[j]) * static_cast<int32_t>(x[b].qs[j]);
      }
      sum += static_cast<float>(isum) * (fp16_to_fp32(row[b].d) * fp16_to_fp32(x[b].d));
    }
    y[i] = sum;
  }
}

void matvec_q4_0_ref(float* y, const Operand& wo, const Operand& xo, int n, int r0, int r1) {
  const auto* w = static_cast<const BlockQ4_0*>(wo.data);
  const auto* x = static_cast<const BlockQ8_0*>(xo.data);
  const int nb = n / kBlock;
  for (int i = r0; i < r1; i++) {
    const BlockQ4_0* row = w + static_cast<int64_t>(i) * nb;
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
      int32_t isum = 0;
      for (int j = 0; j < kBlock / 2; j++) {
        const int32_t v0 = (row[b].qs[j] & 0x0F) - 8;
        const int32_t v1 = (row[b].qs[j] >> 4) - 8;
        isum += v0 * x[b].qs[j] + v1 * x[b].qs[j + kBlock / 2];
      }
      sum += static_cast<float>(isum) * (fp16_to_fp32(row[b].d) * fp16_to_fp32(x[b].d));
    }
    y[i] = sum;
  }
}

}  // namespace detail

namespace {

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// float -> int8 as the C cast does for finite values in range; 0 for NaN and out-of-range
// values (only reachable from non-finite inputs), where the cast would be undefined.
int8_t to_int8(float v) { return v > -129.0f && v < 128.0f ? static_cast<int8_t>(v) : int8_t{0}; }

// to_int8(roundf(v)), without the libm call (this runs on every matvec input): round half away
// from zero. v - trunc(v) is exact, so the comparisons with 1/2 are too.
int8_t round_to_int8(float v) {
  v = v > -128.5f && v < 127.5f ? v : 0.0f;  // roundf(v) outside int8, or NaN: 0 (branch-free)
  int t = static_cast<int>(v);  // toward zero
  const float frac = v - static_cast<float>(t);
  t += (frac >= 0.5f ? 1 : 0) - (frac <= -0.5f ? 1 : 0);
  return static_cast<int8_t>(t);
}

}  // namespace

// Bit manipulation rather than float tricks, so that the result does not depend on the rounding
// mode or DAZ/FTZ. NaNs keep their sign and top payload bits and come out quiet, as with F16C.
float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) {  // inf, or NaN made quiet
    return bits_float(sign | 0x7F800000u | (mant << 13) | (mant != 0 ? 0x00400000u : 0u));
  }
  if (exp != 0) return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return bits_float(sign);  // +-0
  // Subnormal: mant * 2^-24. Shift the leading one up to bit 10 (the implicit bit).
  uint32_t e = 113;
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    e--;
  }
  return bits_float(sign | (e << 23) | ((mant & 0x3FFu) << 13));
}

uint16_t fp32_to_fp16(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) {  // NaN: quiet, top 9 payload bits kept
    return static_cast<uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  }
  if (a >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65536 (and inf): inf
  if (a >= 0x38800000u) {  // normal in half (>= 2^-14): rebias, round to nearest even
    const uint32_t h = (a - 0x38000000u) >> 13;  // exponent - 112, 10 mantissa bits
    const uint32_t rest = a & 0x1FFFu;
    // A carry out of the mantissa moves to the next binade, or to inf above 65504: both right.
    const uint32_t up = rest > 0x1000u || (rest == 0x1000u && (h & 1u)) ? 1u : 0u;
    return static_cast<uint16_t>(sign | (h + up));
  }
  if (a <= 0x33000000u) return sign;  // <= 2^-25: halfway to the smallest subnormal or less: 0
  // Subnormal in half: (1.mant) * 2^(e-127) in units of 2^-24, rounded to nearest even; may round
  // up to the smallest normal (0x0400), which the same addition gives.
  const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126 - (a >> 23);  // 14 .. 24
  const uint32_t h = m >> shift;
  const uint32_t rest = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  const uint32_t up = rest > half || (rest == half && (h & 1u)) ? 1u : 0u;
  return static_cast<uint16_t>(sign | (h + up));
}

// The same bytes as ggml's for all finite x (the maximum is taken in four interleaved runs, which
// only matters for NaNs).
void detail::quantize_row_q8_0_ref(const Destination& to, const float* x, int n) {
  auto* y = static_cast<BlockQ8_0*>(to.data);
  for (int i = 0; i < n / kBlock; i++) {
    const float* xb = x + static_cast<int64_t>(i) * kBlock;
    float m[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int j = 0; j < kBlock; j += 4) {
      for (int k = 0; k < 4; k++) {
        const float v = fabsf(xb[j + k]);
        m[k] = m[k] > v ? m[k] : v;  // ggml's MAX(amax, v)
      }
    }
    const float m01 = m[0] > m[1] ? m[0] : m[1], m23 = m[2] > m[3] ? m[2] : m[3];
    const float amax = m01 > m23 ? m01 : m23;
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kBlock; j++) y[i].qs[j] = round_to_int8(xb[j] * id);
  }
}

void detail::quantize_row_q4_0_ref(const Destination& to, const float* x, int n) {
  auto* y = static_cast<BlockQ4_0*>(to.data);
  for (int i = 0; i < n / kBlock; i++) {
    const float* xb = x + static_cast<int64_t>(i) * kBlock;
    float amax = 0.0f;
    float max = 0.0f;
    for (int j = 0; j < kBlock; j++) {
      const float v = xb[j];
      if (amax < fabsf(v)) {
        amax = fabsf(v);
        max = v;
      }
    }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kBlock / 2; j++) {
      const float x0 = xb[j] * id;
      const float x1 = xb[kBlock / 2 + j] * id;
      const uint8_t xi0 = static_cast<uint8_t>(std::min<int>(15, to_int8(x0 + 8.5f)));
      const uint8_t xi1 = static_cast<uint8_t>(std::min<int>(15, to_int8(x1 + 8.5f)));
      y[i].qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
    }
  }
}

void detail::dequantize_row_q8_0_ref(float* y, const Operand& from, int n) {
  const auto* x = static_cast<const BlockQ8_0*>(from.data);
  for (int i = 0; i < n / kBlock; i++) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kBlock; j++) y[static_cast<int64_t>(i) * kBlock + j] = x[i].qs[j] * d;
  }
}

void detail::dequantize_row_q4_0_ref(float* y, const Operand& from, int n) {
  const auto* x = static_cast<const BlockQ4_0*>(from.data);
  for (int i = 0; i < n / kBlock; i++) {
    const float d = fp16_to_fp32(x[i].d);
    float* yb = y + static_cast<int64_t>(i) * kBlock;
    for (int j = 0; j < kBlock / 2; j++) {
      const int x0 = (x[i].qs[j] & 0x0F) - 8;
      const int x1 = (x[i].qs[j] >> 4) - 8;
      yb[j] = x0 * d;
      yb[j + kBlock / 2] = x1 * d;
    }
  }
}

void detail::dequantize_row_f16_ref(float* y, const Operand& from, int n) {
  const auto* x = static_cast<const uint16_t*>(from.data);
  for (int i = 0; i < n; i++) y[i] = fp16_to_fp32(x[i]);
}

void detail::quantize_row_f16(const Destination& to, const float* x, int n) {
  auto* y = static_cast<uint16_t*>(to.data);
  for (int i = 0; i < n; i++) y[i] = fp32_to_fp16(x[i]);
}

void detail::quantize_row_f32(const Destination& to, const float* x, int n) {
  std::memcpy(to.data, x, std::size_t(n) * sizeof(float));
}

void detail::dequantize_row_f32(float* y, const Operand& from, int n) {
  std::memcpy(y, from.data, std::size_t(n) * sizeof(float));
}

// runq.c's quantize (quantize_q8) and dequantize: value = q * scale of its group.
void detail::quantize_row_q8_groups(const Destination& to, const float* x, int n) {
  quantize_q8(static_cast<int8_t*>(to.data), to.scales, x, n, to.group_size);
}

void detail::dequantize_row_q8_groups_ref(float* y, const Operand& from, int n) {
  const auto* q = static_cast<const int8_t*>(from.data);
  for (int j = 0; j < n; j++) y[j] = q[j] * from.scales[j / from.group_size];
}

void rmsnorm(float* out, const float* x, const float* weight, int n, float eps) {
  float ss = 0.0f;
  for (int j = 0; j < n; j++) ss += x[j] * x[j];
  ss /= n;
  ss += eps;
  ss = 1.0f / sqrtf(ss);
  for (int j = 0; j < n; j++) out[j] = weight[j] * (ss * x[j]);  // out may alias x
}

void softmax(float* x, int n) { softmax_rows(x, n, 1, n); }

namespace {
// f(j, i) for i in [from, n) and j in [0, m), m <= 8: the rows' chains over i side by side, as
// each row's chain is a sequence of dependent operations (fully unrolled when m is 8).
template <typename F>
void side_by_side(int m, int from, int n, F f) {
  if (m == 8) {
    for (int i = from; i < n; i++) {
      for (int j = 0; j < 8; j++) f(j, i);
    }
  } else {
    for (int i = from; i < n; i++) {
      for (int j = 0; j < m; j++) f(j, i);
    }
  }
}
}  // namespace

void softmax_rows(float* x, std::ptrdiff_t stride, int rows, int n) {
  if (n <= 0) return;
  constexpr int kSide = 8;
  for (int r0 = 0; r0 < rows; r0 += kSide) {
    const int m = rows - r0 < kSide ? rows - r0 : kSide;
    float* first = x + r0 * stride;
    float max_val[kSide], sum[kSide] = {};
    for (int j = 0; j < m; j++) max_val[j] = first[j * stride];
    side_by_side(m, 1, n, [&](int j, int i) {
      if (first[j * stride + i] > max_val[j]) max_val[j] = first[j * stride + i];
    });
    for (int j = 0; j < m; j++) {
      float* row = first + j * stride;
      for (int i = 0; i < n; i++) row[i] -= max_val[j];
      expf_elements(row, row, n);
    }
    side_by_side(m, 0, n, [&](int j, int i) { sum[j] += first[j * stride + i]; });
    for (int j = 0; j < m; j++) {
      for (int i = 0; i < n; i++) first[j * stride + i] /= sum[j];
    }
  }
}

void rope(float* q, float* k, int q_dim, int k_dim, int head_size, int pos, float theta) {
  // run.c loops to q_dim and rotates k while i < k_dim; looping to the larger of the two gives
  // the same floats and also covers k_dim > q_dim. The angle depends on i % head_size alone, so
  // each one is computed once and applied to that pair of every head (run.c computes it per pair:
  // the same function of the same inputs, so the same floats, with 1/heads of the powf/cosf/sinf).
  const int dim = q_dim > k_dim ? q_dim : k_dim;
  for (int head_dim = 0; head_dim < head_size && head_dim < dim; head_dim += 2) {
    float freq = 1.0f / powf(theta, head_dim / static_cast<float>(head_size));
    float val = pos * freq;
    float fcr = cosf(val);
    float fci = sinf(val);
    for (int i = head_dim; i < dim; i += head_size) {
      for (int v = 0; v < 2; v++) {
        float* vec = v == 0 ? q : k;
        if (i >= (v == 0 ? q_dim : k_dim)) continue;
        float v0 = vec[i];
        float v1 = vec[i + 1];
        vec[i] = v0 * fcr - v1 * fci;
        vec[i + 1] = v0 * fci + v1 * fcr;
      }
    }
  }
}

void swiglu(float* hb, const float* hb2, int n) {
  constexpr int kPiece = 256;  // expf(-val) for a piece at a time, on the stack
  float e[kPiece];
  for (int at = 0; at < n; at += kPiece) {
    const int m = n - at < kPiece ? n - at : kPiece;
    for (int i = 0; i < m; i++) e[i] = -hb[at + i];
    expf_elements(e, e, m);
    for (int i = 0; i < m; i++) {
      float val = hb[at + i];
      val *= (1.0f / (1.0f + e[i]));
      val *= hb2[at + i];
      hb[at + i] = val;
    }
  }
}

void detail::expf_elements_ref(float* y, const float* x, int n) {
  for (int i = 0; i < n; i++) y[i] = expf(x[i]);
}

void quantize_q8(int8_t* q, float* s, const float* x, int n, int gs) {
  constexpr float q_max = 127.0f;
  for (int group = 0; group < n / gs; group++) {
    const float* xg = x + static_cast<int64_t>(group) * gs;
    int8_t* qg = q + static_cast<int64_t>(group) * gs;
    float wmax = 0.0f;
    for (int i = 0; i < gs; i++) {
      float val = fabsf(xg[i]);
      if (val > wmax) wmax = val;
    }
    float scale = wmax / q_max;
    s[group] = scale;
    for (int i = 0; i < gs; i++) {
      // An all-zero group would give 0/0 = NaN, and casting NaN to int8 is undefined.
      qg[i] = scale == 0.0f ? int8_t{0} : static_cast<int8_t>(round(xg[i] / scale));
    }
  }
}

void axpy(float* y, float a, const float* x, int n) {
  for (int i = 0; i < n; i++) y[i] += a * x[i];
}

float dot(const float* a, const float* b, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

namespace detail {

void key_scores_ref(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                    int queries, const float* keys, int count, int n, float scale) {
  // A block's 16 chains side by side (dot()'s each, element by element in order).
  for (int b = 0; b * kKeyBlock < count; b++) {
    const float* block = keys + std::size_t(b) * n * kKeyBlock;
    const int live = count - b * kKeyBlock < kKeyBlock ? count - b * kKeyBlock : kKeyBlock;
    for (int k = 0; k < queries; k++) {
      const float* a = q + k * q_stride;
      float s[kKeyBlock] = {};
      for (int i = 0; i < n; i++) {
        for (int j = 0; j < kKeyBlock; j++) s[j] += a[i] * block[i * kKeyBlock + j];
      }
      for (int j = 0; j < live; j++) out[k * out_stride + b * kKeyBlock + j] = s[j] / scale;
    }
  }
}

void weighted_sums_ref(float* out, std::ptrdiff_t out_stride, const float* w,
                       std::ptrdiff_t w_stride, int queries, const float* rows,
                       std::ptrdiff_t stride, int count, int n) {
  for (int k = 0; k < queries; k++) {
    float* o = out + k * out_stride;
    for (int i = 0; i < n; i++) o[i] = 0.0f;
    for (int r = 0; r < count; r++) axpy(o, w[k * w_stride + r], rows + r * stride, n);
  }
}

}  // namespace detail

}  // namespace troupe::kernels
