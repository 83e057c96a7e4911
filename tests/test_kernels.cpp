// Kernels: the scalar reference against llama2.c's own loops and hand-computed values, and every
// SIMD path this machine can run against the reference.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "troupe/kernels/kernels.hpp"

namespace tk = troupe::kernels;
using tk::Isa;

namespace {

constexpr Isa kAllIsas[] = {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon};

// The ISAs to test here; says once per run which ones this CPU or build cannot run.
std::vector<Isa> runnable_isas() {
  static std::set<Isa> noted;
  std::vector<Isa> out;
  for (Isa isa : kAllIsas) {
    if (tk::isa_available(isa)) {
      out.push_back(isa);
    } else if (noted.insert(isa).second) {
      std::printf("note: skipping %s (not compiled in or not supported by this CPU)\n",
                  std::string(tk::isa_name(isa)).c_str());
    }
  }
  return out;
}

std::vector<float> random_floats(std::mt19937& rng, size_t count, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(count);
  for (float& f : v) f = dist(rng);
  return v;
}

std::vector<int8_t> random_int8(std::mt19937& rng, size_t count) {
  std::uniform_int_distribution<int> dist(-128, 127);  // the full range, -128 included
  std::vector<int8_t> v(count);
  for (int8_t& q : v) q = static_cast<int8_t>(dist(rng));
  return v;
}

// llama2.c run.c matmul, verbatim apart from the row range.
void runc_matmul(float* xout, const float* x, const float* w, int n, int r0, int r1) {
  for (int i = r0; i < r1; i++) {
    float val = 0.0f;
    for (int j = 0; j < n; j++) val += w[static_cast<int64_t>(i) * n + j] * x[j];
    xout[i] = val;
  }
}

// llama2.c runq.c matmul, verbatim apart from the row range and GS as an argument.
void runq_matmul(float* xout, const int8_t* xq, const float* xs, const int8_t* wq, const float* ws,
                 int n, int gs, int r0, int r1) {
  for (int i = r0; i < r1; i++) {
    float val = 0.0f;
    int32_t ival = 0;
    int64_t in = static_cast<int64_t>(i) * n;
    for (int j = 0; j <= n - gs; j += gs) {
      for (int k = 0; k < gs; k++) ival += ((int32_t)xq[j + k]) * ((int32_t)wq[in + j + k]);
      val += ((float)ival) * ws[(in + j) / gs] * xs[j / gs];
      ival = 0;
    }
    xout[i] = val;
  }
}

struct RowRange {
  int r0, r1;
};

// Full, odd start and end (exercises the 4-row blocks and the single-row remainder), one row,
// and empty.
std::vector<RowRange> row_ranges(int rows) {
  return {{0, rows}, {3, rows - 2}, {rows / 2, rows / 2 + 1}, {5, 5}};
}

}  // namespace

TEST_CASE("isa names and availability", "[kernels][dispatch]") {
  CHECK(tk::isa_name(Isa::scalar) == "scalar");
  CHECK(tk::isa_name(Isa::avx2) == "avx2");
  CHECK(tk::isa_name(Isa::avx512) == "avx512");
  CHECK(tk::isa_name(Isa::neon) == "neon");
  CHECK(tk::isa_available(Isa::scalar));
#if defined(__x86_64__)
  CHECK_FALSE(tk::isa_available(Isa::neon));
  // The x86 paths are always compiled in on x86-64, so whatever the CPU has must be usable.
  const bool cpu_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool cpu_avx512 = cpu_avx2 && __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512vnni");
  CHECK(tk::isa_available(Isa::avx2) == cpu_avx2);
  CHECK(tk::isa_available(Isa::avx512) == cpu_avx512);
#elif defined(__aarch64__)
  CHECK(tk::isa_available(Isa::neon));
  CHECK_FALSE(tk::isa_available(Isa::avx2));
  CHECK_FALSE(tk::isa_available(Isa::avx512));
#endif
  // Unavailable ISAs get the scalar table.
  for (Isa isa : kAllIsas) {
    if (!tk::isa_available(isa)) CHECK(&tk::matvec_ops(isa) == &tk::matvec_ops(Isa::scalar));
  }
  const tk::MatvecOps& ops = tk::matvec_ops();
  CHECK(ops.f32 != nullptr);
  CHECK(ops.q8 != nullptr);
  CHECK(&tk::matvec_ops() == &ops);  // chosen once
}

TEST_CASE("TROUPE_ISA lowers the detected ISA and never raises it", "[kernels][dispatch]") {
  const char* saved = std::getenv("TROUPE_ISA");
  const std::string saved_value = saved ? saved : "";
  unsetenv("TROUPE_ISA");
  const Isa best = tk::detected_isa();
  CHECK(tk::isa_available(best));
  for (Isa isa : kAllIsas) {
    if (tk::isa_available(isa) && isa != Isa::scalar && isa != best) {
      // best is the highest available, so nothing else available may be preferred over it
      CHECK((isa == Isa::avx2 && best == Isa::avx512));
    }
  }

  setenv("TROUPE_ISA", "scalar", 1);
  CHECK(tk::detected_isa() == Isa::scalar);
  for (Isa isa : kAllIsas) {
    setenv("TROUPE_ISA", std::string(tk::isa_name(isa)).c_str(), 1);
    CHECK(tk::detected_isa() == (tk::isa_available(isa) ? isa : best));
  }
  for (const char* junk : {"", "bogus", "AVX9000", "avx5120"}) {
    setenv("TROUPE_ISA", junk, 1);
    CHECK(tk::detected_isa() == best);
  }

  if (saved) {
    setenv("TROUPE_ISA", saved_value.c_str(), 1);
  } else {
    unsetenv("TROUPE_ISA");
  }
}

TEST_CASE("reference matvec is run.c's and runq.c's matmul, bit for bit", "[kernels][reference]") {
  std::mt19937 rng(1234);
  const int rows = 19;
  for (int n : {64, 172, 2048}) {
    const auto w = random_floats(rng, size_t(rows) * n);
    const auto x = random_floats(rng, n);
    std::vector<float> want(rows, -1.0f), got(rows, -1.0f);
    runc_matmul(want.data(), x.data(), w.data(), n, 0, rows);
    tk::matvec_ops(Isa::scalar).f32(got.data(), w.data(), x.data(), n, 0, rows);
    CHECK(want == got);
  }
  for (int gs : {32, 64}) {
    const int n = 256;
    const auto wq = random_int8(rng, size_t(rows) * n);
    const auto xq = random_int8(rng, n);
    const auto ws = random_floats(rng, size_t(rows) * n / gs, 0.001f, 0.02f);
    const auto xs = random_floats(rng, n / gs, 0.001f, 0.02f);
    std::vector<float> want(rows, -1.0f), got(rows, -1.0f);
    runq_matmul(want.data(), xq.data(), xs.data(), wq.data(), ws.data(), n, gs, 0, rows);
    tk::matvec_ops(Isa::scalar).q8(got.data(), wq.data(), ws.data(), xq.data(), xs.data(), n, gs, 0,
                                   rows);
    CHECK(want == got);
  }
}

TEST_CASE("f32 matvec of every ISA matches the reference", "[kernels][matvec]") {
  std::mt19937 rng(42);
  for (int n : {1, 7, 15, 16, 31, 64, 172, 288, 2048, 5632}) {
    const int rows = n >= 2048 ? 13 : 37;
    const auto w = random_floats(rng, size_t(rows) * n);
    const auto x = random_floats(rng, n);
    // Error scale per row: sum |w*x|; a reordered float sum differs by a few ulps of that.
    std::vector<double> mag(rows, 0.0);
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < n; j++) mag[i] += std::fabs(double(w[size_t(i) * n + j]) * x[j]);
    }
    for (Isa isa : runnable_isas()) {
      for (RowRange rr : row_ranges(rows)) {
        INFO("isa " << tk::isa_name(isa) << " n " << n << " rows [" << rr.r0 << ", " << rr.r1 << ")");
        std::vector<float> want(rows, NAN), got(rows, NAN);
        tk::matvec_ops(Isa::scalar).f32(want.data(), w.data(), x.data(), n, rr.r0, rr.r1);
        tk::matvec_ops(isa).f32(got.data(), w.data(), x.data(), n, rr.r0, rr.r1);
        for (int i = 0; i < rows; i++) {
          if (i < rr.r0 || i >= rr.r1) {
            CHECK(std::isnan(got[i]));  // rows outside the range are not written
          } else {
            CHECK(std::fabs(double(got[i]) - want[i]) <= 1e-5 * mag[i] + 1e-6);
          }
        }
      }
    }
  }
}

TEST_CASE("f32 matvec results do not depend on the row range or the alignment", "[kernels][matvec]") {
  // A row's floats must be the same however rows are split between threads and wherever the
  // matrix sits in memory (checkpoint versions put the weights at different offsets).
  std::mt19937 rng(99);
  for (int n : {63, 172, 2048}) {
    const int rows = 11;
    const auto w = random_floats(rng, size_t(rows) * n);
    const auto x = random_floats(rng, n);
    for (Isa isa : runnable_isas()) {
      INFO("isa " << tk::isa_name(isa) << " n " << n);
      const auto f32 = tk::matvec_ops(isa).f32;
      std::vector<float> whole(rows);
      f32(whole.data(), w.data(), x.data(), n, 0, rows);
      for (int r0 = 0; r0 < rows; r0++) {
        for (int r1 = r0 + 1; r1 <= rows; r1++) {
          std::vector<float> part(rows, NAN);
          f32(part.data(), w.data(), x.data(), n, r0, r1);
          for (int i = r0; i < r1; i++) CHECK(part[i] == whole[i]);
        }
      }
      for (int shift = 1; shift < 16; shift++) {
        std::vector<float> moved(w.size() + 16);
        std::copy(w.begin(), w.end(), moved.begin() + shift);
        std::vector<float> y(rows);
        f32(y.data(), moved.data() + shift, x.data(), n, 0, rows);
        CHECK(y == whole);
      }
    }
  }
}

TEST_CASE("q8 matvec of every ISA is bit-identical to the reference", "[kernels][matvec]") {
  std::mt19937 rng(7);
  struct Shape {
    int n, gs;
  };
  // gs multiples of 32 take the SIMD paths: 32 (even and odd group counts), 64 and its
  // multiples, 96 and 160 (a 32-byte step after 64-byte ones), one group per row, and more groups
  // than the AVX-512 path keeps on its stack (131200 / 32 = 4100). 16, 24, 12 and 144 check the
  // fallbacks (AVX2 takes gs % 16 == 0, the others go to the reference).
  const Shape shapes[] = {{32, 32},   {64, 32},   {64, 64},     {288, 32},  {288, 96},
                          {320, 160}, {288, 144}, {2048, 64},   {2048, 128}, {2048, 256},
                          {1024, 1024}, {5632, 32}, {5632, 64}, {131200, 32}, {64, 16},
                          {72, 24},   {60, 12}};
  for (Shape s : shapes) {
    const int rows = s.n >= 100000 ? 7 : s.n >= 2048 ? 13 : 37;
    const int groups = s.n / s.gs;
    // Full-range int8 (with -128) and random scales: the group sums must still be exact.
    const auto wq = random_int8(rng, size_t(rows) * s.n);
    const auto xq = random_int8(rng, s.n);
    const auto ws = random_floats(rng, size_t(rows) * groups, 0.0001f, 0.01f);
    const auto xs = random_floats(rng, groups, 0.0001f, 0.01f);
    // And realistic data: floats quantized by quantize_q8 (the whole matrix as one vector).
    const auto wf = random_floats(rng, size_t(rows) * s.n);
    const auto xf = random_floats(rng, s.n, -4.0f, 4.0f);
    std::vector<int8_t> wq2(wf.size()), xq2(xf.size());
    std::vector<float> ws2(ws.size()), xs2(xs.size());
    tk::quantize_q8(wq2.data(), ws2.data(), wf.data(), rows * s.n, s.gs);
    tk::quantize_q8(xq2.data(), xs2.data(), xf.data(), s.n, s.gs);

    for (Isa isa : runnable_isas()) {
      for (RowRange rr : row_ranges(rows)) {
        INFO("isa " << tk::isa_name(isa) << " n " << s.n << " gs " << s.gs << " rows [" << rr.r0
                    << ", " << rr.r1 << ")");
        for (int data = 0; data < 2; data++) {
          const int8_t* w8 = data == 0 ? wq.data() : wq2.data();
          const int8_t* x8 = data == 0 ? xq.data() : xq2.data();
          const float* wsp = data == 0 ? ws.data() : ws2.data();
          const float* xsp = data == 0 ? xs.data() : xs2.data();
          std::vector<float> want(rows, NAN), got(rows, NAN);
          tk::matvec_ops(Isa::scalar).q8(want.data(), w8, wsp, x8, xsp, s.n, s.gs, rr.r0, rr.r1);
          tk::matvec_ops(isa).q8(got.data(), w8, wsp, x8, xsp, s.n, s.gs, rr.r0, rr.r1);
          for (int i = 0; i < rows; i++) {
            if (i < rr.r0 || i >= rr.r1) {
              CHECK(std::isnan(got[i]));
            } else {
              CHECK(got[i] == want[i]);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("rmsnorm", "[kernels][reference]") {
  const float x[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  const float weight[4] = {1.0f, 1.0f, 2.0f, 0.5f};
  float out[4];
  tk::rmsnorm(out, x, weight, 4, 1e-5f);
  // mean of squares 30/4 = 7.5
  const double inv = 1.0 / std::sqrt(7.5 + 1e-5);
  for (int i = 0; i < 4; i++) CHECK(out[i] == Approx(weight[i] * x[i] * inv).epsilon(1e-6));

  // In place gives the same floats.
  float y[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  tk::rmsnorm(y, y, weight, 4, 1e-5f);
  for (int i = 0; i < 4; i++) CHECK(y[i] == out[i]);

  // Unit weights make the output's mean square 1 (up to eps).
  std::mt19937 rng(3);
  const auto v = random_floats(rng, 288, -3.0f, 3.0f);
  const std::vector<float> ones(288, 1.0f);
  std::vector<float> o(288);
  tk::rmsnorm(o.data(), v.data(), ones.data(), 288, 1e-5f);
  double ms = 0;
  for (float f : o) ms += double(f) * f;
  CHECK(ms / 288 == Approx(1.0).epsilon(1e-4));
}

TEST_CASE("softmax", "[kernels][reference]") {
  float a[2] = {0.0f, std::log(2.0f)};
  tk::softmax(a, 2);
  CHECK(a[0] == Approx(1.0 / 3).epsilon(1e-6));
  CHECK(a[1] == Approx(2.0 / 3).epsilon(1e-6));

  std::mt19937 rng(5);
  const auto v = random_floats(rng, 1000, -10.0f, 10.0f);
  std::vector<float> p = v, shifted(v.size());
  for (size_t i = 0; i < v.size(); i++) shifted[i] = v[i] + 100.0f;
  tk::softmax(p.data(), int(p.size()));
  tk::softmax(shifted.data(), int(shifted.size()));
  double sum = 0;
  for (size_t i = 0; i < p.size(); i++) {
    sum += p[i];
    CHECK(p[i] >= 0.0f);
    CHECK(shifted[i] == Approx(p[i]).epsilon(1e-4).margin(1e-9));
  }
  CHECK(sum == Approx(1.0).epsilon(1e-5));

  // Large logits do not overflow (the max is subtracted first).
  float big[3] = {1000.0f, 1001.0f, 1000.0f};
  tk::softmax(big, 3);
  CHECK(big[0] + big[1] + big[2] == Approx(1.0f));
  CHECK(big[1] > big[0]);

  float one = 5.0f;
  tk::softmax(&one, 1);
  CHECK(one == 1.0f);
}

TEST_CASE("rope", "[kernels][reference]") {
  std::mt19937 rng(11);
  const int head_size = 16, q_dim = 64, k_dim = 32;
  const auto q0 = random_floats(rng, q_dim);
  const auto k0 = random_floats(rng, q_dim);  // longer than k_dim: the tail must stay untouched

  // Position 0 is the identity, exactly.
  auto q = q0, k = k0;
  tk::rope(q.data(), k.data(), q_dim, k_dim, head_size, 0, 10000.0f);
  CHECK(q == q0);
  CHECK(k == k0);

  // Position 3: pair i turns by 3 * theta^-(i % head_size / head_size) radians; k like q up to
  // k_dim, untouched after.
  tk::rope(q.data(), k.data(), q_dim, k_dim, head_size, 3, 10000.0f);
  for (int i = 0; i < q_dim; i += 2) {
    const double angle = 3.0 / std::pow(10000.0, (i % head_size) / double(head_size));
    const double c = std::cos(angle), s = std::sin(angle);
    CHECK(q[i] == Approx(q0[i] * c - q0[i + 1] * s).margin(1e-5));
    CHECK(q[i + 1] == Approx(q0[i] * s + q0[i + 1] * c).margin(1e-5));
    if (i < k_dim) {
      CHECK(k[i] == Approx(k0[i] * c - k0[i + 1] * s).margin(1e-5));
      CHECK(k[i + 1] == Approx(k0[i] * s + k0[i + 1] * c).margin(1e-5));
    } else {
      CHECK(k[i] == k0[i]);
      CHECK(k[i + 1] == k0[i + 1]);
    }
  }

  // k may be null when k_dim is 0; q gets the same floats as with a k.
  auto q2 = q0;
  tk::rope(q2.data(), nullptr, q_dim, 0, head_size, 3, 10000.0f);
  CHECK(q2 == q);
}

TEST_CASE("swiglu", "[kernels][reference]") {
  float hb[4] = {0.0f, 1.0f, -2.0f, 3.0f};
  const float hb2[4] = {5.0f, 2.0f, 1.0f, -1.0f};
  tk::swiglu(hb, hb2, 4);
  auto silu = [](double v) { return v / (1.0 + std::exp(-v)); };
  CHECK(hb[0] == 0.0f);
  CHECK(hb[1] == Approx(silu(1.0) * 2.0).epsilon(1e-6));
  CHECK(hb[2] == Approx(silu(-2.0) * 1.0).epsilon(1e-6));
  CHECK(hb[3] == Approx(silu(3.0) * -1.0).epsilon(1e-6));
}

TEST_CASE("quantize_q8", "[kernels][reference]") {
  std::mt19937 rng(13);
  const int gs = 64, n = 4 * gs;
  auto x = random_floats(rng, n, -2.0f, 2.0f);
  for (int i = gs; i < 2 * gs; i++) x[i] = 0.0f;  // group 1 all zero
  x[2 * gs + 5] = -7.0f;                          // group 2's max is negative
  std::vector<int8_t> q(n, 99);
  std::vector<float> s(n / gs, -1.0f);
  tk::quantize_q8(q.data(), s.data(), x.data(), n, gs);

  CHECK(s[1] == 0.0f);
  for (int i = gs; i < 2 * gs; i++) CHECK(q[i] == 0);
  CHECK(s[2] == 7.0f / 127.0f);
  CHECK(q[2 * gs + 5] == -127);
  for (int g = 0; g < n / gs; g++) {
    for (int i = g * gs; i < (g + 1) * gs; i++) {
      CHECK(q[i] != -128);  // symmetric: [-127, 127]
      CHECK(std::fabs(q[i] * s[g] - x[i]) <= s[g] / 2 * (1 + 1e-5f));  // round trip within half a step
    }
  }
}

TEST_CASE("axpy and dot", "[kernels][reference]") {
  float y[3] = {1.0f, 2.0f, 3.0f};
  const float x[3] = {0.5f, -1.0f, 4.0f};
  tk::axpy(y, 2.0f, x, 3);
  CHECK(y[0] == 2.0f);
  CHECK(y[1] == 0.0f);
  CHECK(y[2] == 11.0f);
  CHECK(tk::dot(x, x, 3) == 0.25f + 1.0f + 16.0f);
  CHECK(tk::dot(x, x, 0) == 0.0f);
  // In order, like a plain loop (not pairwise): 1e8 + 1 - 1e8 loses the 1.
  const float a[3] = {1e8f, 1.0f, -1e8f}, ones[3] = {1.0f, 1.0f, 1.0f};
  CHECK(tk::dot(a, ones, 3) == 0.0f);
}
