// Scalar reference kernels. Each loop mirrors llama2.c's run.c (runq.c for q8) statement by
// statement so that, built with -ffp-contract=off and no fast-math, it yields the same floats.
#include <cmath>
#include <cstdint>

#include "matvec_impl.hpp"
#include "troupe/kernels/kernels.hpp"

namespace troupe::kernels {

namespace detail {

void matvec_f32_ref(float* y, const float* w, const float* x, int n, int r0, int r1) {
  for (int i = r0; i < r1; i++) {
    const float* row = w + static_cast<int64_t>(i) * n;  // rows * n can pass 2^31
    float val = 0.0f;
    for (int j = 0; j < n; j++) val += row[j] * x[j];
    y[i] = val;
  }
}

void matvec_q8_ref(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs,
                   int n, int gs, int r0, int r1) {
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

}  // namespace detail

void rmsnorm(float* out, const float* x, const float* weight, int n, float eps) {
  float ss = 0.0f;
  for (int j = 0; j < n; j++) ss += x[j] * x[j];
  ss /= n;
  ss += eps;
  ss = 1.0f / sqrtf(ss);
  for (int j = 0; j < n; j++) out[j] = weight[j] * (ss * x[j]);  // out may alias x
}

void softmax(float* x, int n) {
  if (n <= 0) return;
  float max_val = x[0];
  for (int i = 1; i < n; i++) {
    if (x[i] > max_val) max_val = x[i];
  }
  float sum = 0.0f;
  for (int i = 0; i < n; i++) {
    x[i] = expf(x[i] - max_val);
    sum += x[i];
  }
  for (int i = 0; i < n; i++) x[i] /= sum;
}

void rope(float* q, float* k, int q_dim, int k_dim, int head_size, int pos, float theta) {
  // run.c loops to q_dim and rotates k while i < k_dim; looping to the larger of the two gives
  // the same floats and also covers k_dim > q_dim.
  const int dim = q_dim > k_dim ? q_dim : k_dim;
  for (int i = 0; i < dim; i += 2) {
    int head_dim = i % head_size;
    float freq = 1.0f / powf(theta, head_dim / static_cast<float>(head_size));
    float val = pos * freq;
    float fcr = cosf(val);
    float fci = sinf(val);
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

void swiglu(float* hb, const float* hb2, int n) {
  for (int i = 0; i < n; i++) {
    float val = hb[i];
    val *= (1.0f / (1.0f + expf(-val)));
    val *= hb2[i];
    hb[i] = val;
  }
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

}  // namespace troupe::kernels
