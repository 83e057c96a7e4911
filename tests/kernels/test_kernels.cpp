// Kernels: the scalar reference against llama2.c's own loops and hand-computed values, and every
// SIMD path this machine can run against the reference.
#include <catch2/catch.hpp>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "loops_portable.hpp"
#include "troupe/kernels/kernels.hpp"

namespace tk = troupe::kernels;
using tk::Isa;
using T = tk::WeightType;

namespace {

constexpr auto& kAllIsas = tk::kIsasBestFirst;

#if defined(__x86_64__)
// CPUID.1:ECX bit 29 (clang 14's __builtin_cpu_supports does not know "f16c").
bool cpu_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}
#endif

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

// One implementation of a loop under test, named for the messages.
template <class Fn>
struct Path {
  std::string name;
  Fn fn;
};

// A loop of simd_loops.hpp as each runnable ISA has it, then over portable vectors of 8 and 16
// lanes (loops_portable.cpp): the logic the AVX2 and AVX-512 builds run, checked on any CPU.
template <class Fn, class OfIsa>
std::vector<Path<Fn>> simd_loop_paths(OfIsa of_isa, Fn portable8, Fn portable16) {
  std::vector<Path<Fn>> out;
  for (Isa isa : runnable_isas()) out.push_back({std::string(tk::isa_name(isa)), of_isa(isa)});
  out.push_back({"portable 8 lanes", portable8});
  out.push_back({"portable 16 lanes", portable16});
  return out;
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
  CHECK(tk::isa_name(Isa::avxvnni) == "avxvnni");
  CHECK(tk::isa_name(Isa::neon_dotprod) == "neon_dotprod");
  CHECK(tk::isa_available(Isa::scalar));
#if defined(__x86_64__)
  CHECK_FALSE(tk::isa_available(Isa::neon));
  CHECK_FALSE(tk::isa_available(Isa::neon_dotprod));
  // The x86 paths are always compiled in on x86-64, so whatever the CPU has must be usable.
  const bool cpu_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_f16c();
  const bool cpu_avx512 = cpu_avx2 && __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512vnni");
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;  // AVX-VNNI: CPUID.(7, 1):EAX bit 4
  const bool cpu_avxvnni =
      cpu_avx2 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) != 0 && (eax & (1u << 4)) != 0;
  CHECK(tk::isa_available(Isa::avx2) == cpu_avx2);
  CHECK(tk::isa_available(Isa::avxvnni) == cpu_avxvnni);
  CHECK(tk::isa_available(Isa::avx512) == cpu_avx512);
#elif defined(__aarch64__)
  CHECK(tk::isa_available(Isa::neon));
  // sdot: HWCAP_ASIMDDP (qemu-aarch64-static -cpu max has it, -cpu cortex-a72 does not).
  CHECK(tk::isa_available(Isa::neon_dotprod) == ((getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0));
  CHECK_FALSE(tk::isa_available(Isa::avx2));
  CHECK_FALSE(tk::isa_available(Isa::avxvnni));
  CHECK_FALSE(tk::isa_available(Isa::avx512));
#else
  // Any other architecture (riscv64) has the portable scalar path only.
  for (Isa isa : kAllIsas) CHECK(tk::isa_available(isa) == (isa == Isa::scalar));
#endif
  // Unavailable ISAs get the scalar table.
  for (Isa isa : kAllIsas) {
    if (!tk::isa_available(isa)) CHECK(&tk::isa_kernels(isa) == &tk::isa_kernels(Isa::scalar));
  }
  const tk::IsaKernels& ops = tk::isa_kernels();
  CHECK(ops[T::f32].matvec != nullptr);
  CHECK(ops[T::q8_groups].matvec != nullptr);
  for (Isa isa : kAllIsas) {
    const tk::IsaKernels& o = tk::isa_kernels(isa);
    CHECK(o[T::f32].matvec != nullptr);
    CHECK(o[T::q8_groups].matvec != nullptr);
    CHECK(o[T::f16].matvec != nullptr);
    CHECK(o[T::q8_0].matvec != nullptr);
    CHECK(o[T::q4_0].matvec != nullptr);
  }
  CHECK(&tk::isa_kernels() == &ops);  // chosen once
}

TEST_CASE("every weight type has complete kernels on every ISA", "[kernels][dispatch]") {
  for (int i = 0; i < tk::kWeightTypes; i++) {
    const T type = static_cast<T>(i);
    const tk::TypeTraits& t = tk::type_traits(type);
    INFO("type " << t.name);
    CHECK(t.block >= 1);
    CHECK(t.block_bytes >= 1);
    CHECK(t.bytes_of(std::size_t(t.block) * 3) == std::size_t(t.block_bytes) * 3);
    // The input form is a type whose quantize_row makes it, and whose own input is itself.
    CHECK(tk::type_traits(t.input).input == t.input);
    CHECK(!(t.batch_widened && t.quantized));  // widening is exact for plain floats only
    if (t.interleaved) {
      CHECK(t.input == T::q8_0);  // the interleaved kernels and x sums take Q8_0 blocks
      CHECK(t.interleaved->offset > 0);
      CHECK(t.interleaved->copy_groups != nullptr);
      CHECK(t.interleaved->deinterleave_row != nullptr);
    }
    for (Isa isa : kAllIsas) {
      INFO("isa " << tk::isa_name(isa));
      const tk::TypeKernels& k = tk::isa_kernels(isa)[type];
      CHECK(k.quantize_row != nullptr);
      CHECK(k.dequantize_row != nullptr);
      CHECK(k.matvec != nullptr);
      CHECK((k.interleave_groups != nullptr) == (t.interleaved != nullptr));
      CHECK((k.matmul_interleaved != nullptr) == (t.interleaved != nullptr));
      // A batch needs a batched kernel, a widened tile, or the matvec token by token (no more).
      if (t.batch_widened) CHECK(tk::isa_kernels(isa)[T::f32].matmul != nullptr);
    }
  }
  for (Isa isa : kAllIsas) {
    const tk::IsaKernels& k = tk::isa_kernels(isa);
    CHECK(k.key_scores != nullptr);
    CHECK(k.weighted_sums != nullptr);
    CHECK(k.exp_f32 != nullptr);
    CHECK(k.sum_x_blocks != nullptr);
  }
}

TEST_CASE("TROUPE_ISA lowers the detected ISA and never raises it", "[kernels][dispatch]") {
  const char* saved = std::getenv("TROUPE_ISA");
  const std::string saved_value = saved ? saved : "";
  unsetenv("TROUPE_ISA");
  const Isa best = tk::detected_isa();
  CHECK(tk::isa_available(best));
  // best is the first available ISA of kIsasBestFirst: every other available one comes after it.
  const auto rank = [](Isa isa) {
    return std::find(std::begin(tk::kIsasBestFirst), std::end(tk::kIsasBestFirst), isa) -
           std::begin(tk::kIsasBestFirst);
  };
  for (Isa isa : kAllIsas) {
    INFO("isa " << tk::isa_name(isa) << ", best " << tk::isa_name(best));
    if (tk::isa_available(isa) && isa != best) CHECK(rank(isa) > rank(best));
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
    tk::isa_kernels(Isa::scalar)[T::f32].matvec(got.data(), w.data(), x.data(), n, 0, rows);
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
    tk::isa_kernels(Isa::scalar)[T::q8_groups].matvec(got.data(), {wq.data(), ws.data(), gs},
                                                      {xq.data(), xs.data(), gs}, n, 0, rows);
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
        tk::isa_kernels(Isa::scalar)[T::f32].matvec(want.data(), w.data(), x.data(), n, rr.r0, rr.r1);
        tk::isa_kernels(isa)[T::f32].matvec(got.data(), w.data(), x.data(), n, rr.r0, rr.r1);
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
      const auto f32 = tk::isa_kernels(isa)[T::f32].matvec;
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
          const tk::Operand w{w8, wsp, s.gs}, x{x8, xsp, s.gs};
          tk::isa_kernels(Isa::scalar)[T::q8_groups].matvec(want.data(), w, x, s.n, rr.r0, rr.r1);
          tk::isa_kernels(isa)[T::q8_groups].matvec(got.data(), w, x, s.n, rr.r0, rr.r1);
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

  // Bit for bit run.c's loop, which computes the angle for every pair.
  for (int pos : {1, 7, 300, 4095}) {
    auto want_q = q0, want_k = k0, got_q = q0, got_k = k0;
    for (int i = 0; i < q_dim; i += 2) {
      const int head_dim = i % head_size;
      const float freq = 1.0f / powf(10000.0f, head_dim / static_cast<float>(head_size));
      const float val = pos * freq, fcr = cosf(val), fci = sinf(val);
      for (int v = 0; v < (i < k_dim ? 2 : 1); v++) {
        float* vec = v == 0 ? want_q.data() : want_k.data();
        const float v0 = vec[i], v1 = vec[i + 1];
        vec[i] = v0 * fcr - v1 * fci;
        vec[i + 1] = v0 * fci + v1 * fcr;
      }
    }
    tk::rope(got_q.data(), got_k.data(), q_dim, k_dim, head_size, pos, 10000.0f);
    CHECK(std::memcmp(got_q.data(), want_q.data(), q_dim * sizeof(float)) == 0);
    CHECK(std::memcmp(got_k.data(), want_k.data(), q_dim * sizeof(float)) == 0);
  }
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

// ---- fp16 and the ggml block formats ----

namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

#if defined(__x86_64__)
// The hardware conversions (F16C), round to nearest even; this file is built without -mf16c.
__attribute__((target("f16c"))) uint16_t f16c_from_float(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, 0));
}
__attribute__((target("f16c"))) float f16c_to_float(uint16_t h) { return _cvtsh_ss(h); }
#endif

// A random fp16 scale with magnitude in [lo, hi] and a random sign.
uint16_t random_scale(std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> mag(lo, hi);
  const float v = mag(rng);
  return tk::fp32_to_fp16(rng() % 2 ? v : -v);
}

// Rows of ggml blocks: Q8_0 with full-range quants (-128 included) or Q4_0 with any nibbles, and
// random fp16 scales.
std::vector<tk::BlockQ8_0> random_q8_0(std::mt19937& rng, int rows, int n) {
  std::vector<tk::BlockQ8_0> b(size_t(rows) * n / tk::kBlock);
  const auto q = random_int8(rng, b.size() * tk::kBlock);
  for (size_t i = 0; i < b.size(); i++) {
    b[i].d = random_scale(rng, 1e-4f, 1e-2f);
    std::memcpy(b[i].qs, q.data() + i * tk::kBlock, tk::kBlock);
  }
  return b;
}

std::vector<tk::BlockQ4_0> random_q4_0(std::mt19937& rng, int rows, int n) {
  std::vector<tk::BlockQ4_0> b(size_t(rows) * n / tk::kBlock);
  for (auto& blk : b) {
    blk.d = random_scale(rng, 1e-4f, 1e-2f);
    for (uint8_t& q : blk.qs) q = static_cast<uint8_t>(rng());
  }
  return b;
}

std::vector<tk::BlockQ8_0> quantize_q8_0(const std::vector<float>& x) {
  std::vector<tk::BlockQ8_0> b(x.size() / tk::kBlock);
  tk::quantize_row(T::q8_0, b.data(), x.data(), int(x.size()));
  return b;
}

std::vector<tk::BlockQ4_0> quantize_q4_0(const std::vector<float>& x) {
  std::vector<tk::BlockQ4_0> b(x.size() / tk::kBlock);
  tk::quantize_row(T::q4_0, b.data(), x.data(), int(x.size()));
  return b;
}

std::vector<uint16_t> to_f16(const std::vector<float>& x) {
  std::vector<uint16_t> h(x.size());
  for (size_t i = 0; i < x.size(); i++) h[i] = tk::fp32_to_fp16(x[i]);
  return h;
}

// The exact value of a half, from its fields.
double half_value(uint16_t h) {
  const int exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  const double mag = exp == 0x1F ? INFINITY  // NaNs are not passed here
                     : exp == 0  ? std::ldexp(mant, -24)
                                 : std::ldexp(1024 + mant, exp - 25);
  return (h & 0x8000) ? -mag : mag;
}

}  // namespace

TEST_CASE("fp16 conversions by hand", "[kernels][fp16]") {
  struct Case {
    float f;
    uint16_t h;
  };
  const Case cases[] = {
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {1.0f, 0x3C00},
      {-2.0f, 0xC000},
      {0.5f, 0x3800},
      {1.0f / 3.0f, 0x3555},
      {65504.0f, 0x7BFF},                  // largest half
      {65519.99f, 0x7BFF},                 // just below the midpoint to inf
      {65520.0f, 0x7C00},                  // the midpoint: to even, which is inf
      {1e6f, 0x7C00},                      // overflow
      {-1e6f, 0xFC00},
      {INFINITY, 0x7C00},
      {-INFINITY, 0xFC00},
      {1.0f + 0x1p-11f, 0x3C00},           // tie between 0x3C00 and 0x3C01: even
      {1.0f + 3 * 0x1p-11f, 0x3C02},       // tie between 0x3C01 and 0x3C02: even
      {1.0f + 0x1p-11f + 0x1p-20f, 0x3C01},  // just above the tie
      {2047.0f / 1024.0f + 0x1p-11f, 0x4000},  // rounding carries into the exponent
      {0x1p-14f, 0x0400},                  // smallest normal
      {0x1p-14f - 0x1p-25f, 0x0400},       // rounds up from the subnormals to it
      {0x1p-24f, 0x0001},                  // smallest subnormal
      {0x1p-25f, 0x0000},                  // tie between 0 and the smallest subnormal: even
      {0x1p-25f * 1.0000001f, 0x0001},     // just above it
      {-0x1p-25f, 0x8000},
      {3 * 0x1p-25f, 0x0002},              // tie between 1 and 2 (x 2^-24): even
      {5 * 0x1p-25f, 0x0002},              // tie between 2 and 3: even
      {1023 * 0x1p-24f, 0x03FF},           // largest subnormal
      {1e-30f, 0x0000},
      {0x1p-149f, 0x0000},                 // float subnormals go to 0
  };
  for (const Case& c : cases) {
    INFO("f " << c.f << " want 0x" << std::hex << c.h);
    CHECK(tk::fp32_to_fp16(c.f) == c.h);
  }
  // NaNs stay NaN (quiet), keeping the sign and the top payload bits.
  CHECK(tk::fp32_to_fp16(float_of(0x7FC00000u)) == 0x7E00);
  CHECK(tk::fp32_to_fp16(float_of(0xFFC00000u)) == 0xFE00);
  CHECK(tk::fp32_to_fp16(float_of(0x7F800001u)) == 0x7E00);  // signalling, payload below the cut
  CHECK(tk::fp32_to_fp16(float_of(0x7FA02000u)) == 0x7F01);
  CHECK(std::isnan(tk::fp16_to_fp32(0x7C01)));
  CHECK(bits_of(tk::fp16_to_fp32(0x7C01)) == 0x7FC02000u);  // made quiet
  CHECK(bits_of(tk::fp16_to_fp32(0xFE00)) == 0xFFC00000u);
  CHECK(tk::fp16_to_fp32(0x7C00) == INFINITY);
  CHECK(tk::fp16_to_fp32(0xFC00) == -INFINITY);
  CHECK(bits_of(tk::fp16_to_fp32(0x8000)) == 0x80000000u);
}

TEST_CASE("fp16 to fp32 and back for every half", "[kernels][fp16]") {
  std::vector<float> all(65536);
  for (uint32_t h = 0; h < 65536; h++) {
    const float f = tk::fp16_to_fp32(static_cast<uint16_t>(h));
    all[h] = f;
    const bool nan = ((h >> 10) & 0x1F) == 0x1F && (h & 0x3FF) != 0;
    if (nan) {
      CHECK(std::isnan(f));
      CHECK(tk::fp32_to_fp16(f) == (h | 0x200));  // quiet, same sign and payload
    } else {
      if (f != static_cast<float>(half_value(static_cast<uint16_t>(h)))) {
        FAIL("half 0x" << std::hex << h);
      }
      if (tk::fp32_to_fp16(f) != h) FAIL("round trip of half 0x" << std::hex << h);
    }
  }
  std::vector<float> deq(65536);
  std::vector<uint16_t> hs(65536);
  for (uint32_t h = 0; h < 65536; h++) hs[h] = static_cast<uint16_t>(h);
  for (Isa isa : runnable_isas()) {
    INFO("isa " << tk::isa_name(isa));
    std::fill(deq.begin(), deq.end(), 0.0f);
    tk::isa_kernels(isa)[T::f16].dequantize_row(deq.data(), hs.data(), 65536);
    CHECK(std::memcmp(deq.data(), all.data(), sizeof(float) * 65536) == 0);
  }
  tk::dequantize_row(T::f16, deq.data(), hs.data(), 65536);  // the public one: the detected ISA's
  CHECK(std::memcmp(deq.data(), all.data(), sizeof(float) * 65536) == 0);
}

#if defined(__x86_64__)
TEST_CASE("fp16 conversions equal F16C's", "[kernels][fp16]") {
  if (!cpu_f16c()) {
    std::printf("note: no F16C on this CPU, fp16 hardware comparison skipped\n");
    return;
  }
  for (uint32_t h = 0; h < 65536; h++) {
    const uint32_t a = bits_of(tk::fp16_to_fp32(static_cast<uint16_t>(h)));
    const uint32_t b = bits_of(f16c_to_float(static_cast<uint16_t>(h)));
    if (a != b) FAIL("half 0x" << std::hex << h << ": 0x" << a << " vs F16C 0x" << b);
  }
  // Every sign and exponent, with mantissas around each rounding boundary (the 13 bits that are
  // cut, and the subnormal cuts of 14-24 bits) and random ones.
  std::mt19937 rng(2024);
  int64_t checked = 0;
  auto check = [&](uint32_t u) {
    const float f = float_of(u);
    const uint16_t a = tk::fp32_to_fp16(f), b = f16c_from_float(f);
    checked++;
    if (a != b) FAIL("float 0x" << std::hex << u << ": 0x" << a << " vs F16C 0x" << b);
  };
  for (uint32_t sign = 0; sign < 2; sign++) {
    for (uint32_t exp = 0; exp < 256; exp++) {
      const uint32_t base = sign << 31 | exp << 23;
      for (int cut = 13; cut <= 24; cut++) {
        const uint32_t half = 1u << (cut - 1);
        for (uint32_t hi : {0u, 1u, 2u, 3u, 0x155u, 0x3FEu, 0x3FFu, 0x7FFu}) {
          const uint32_t top = (hi << cut) & 0x7FFFFFu;
          for (int64_t delta : {-1, 0, 1}) {
            for (uint32_t mid : {half, 0u, 2 * half}) {
              const int64_t m = int64_t(top) + mid + delta;
              if (m >= 0 && m <= 0x7FFFFF) check(base | uint32_t(m));
            }
          }
        }
      }
      for (int k = 0; k < 2048; k++) check(base | (rng() & 0x7FFFFFu));
    }
  }
  for (int k = 0; k < 200000; k++) check(static_cast<uint32_t>(rng()));
  CHECK(checked > 1000000);
}
#endif

TEST_CASE("Q8_0 quantization: a block by hand", "[kernels][quant]") {
  // Largest magnitude 127, so d = 1 and id = 1: q = roundf(x), halves away from zero.
  std::vector<float> x(32, 0.0f);
  const float vals[] = {0.5f, 1.5f, -2.5f, 127.0f, -3.49f, 100.5f, -0.5f, 0.49f, -126.6f, 2.5f};
  const int8_t want[] = {1, 2, -3, 127, -3, 101, -1, 0, -127, 3};
  for (int i = 0; i < 10; i++) x[3 * i] = vals[i];
  tk::BlockQ8_0 b;
  tk::quantize_row(T::q8_0, &b, x.data(), 32);
  CHECK(b.d == 0x3C00);
  for (int j = 0; j < 32; j++) {
    INFO("j " << j);
    CHECK(b.qs[j] == (j % 3 == 0 && j < 30 ? want[j / 3] : 0));
  }
  std::vector<float> y(32);
  tk::dequantize_row(T::q8_0, y.data(), &b, 32);
  for (int j = 0; j < 32; j++) CHECK(y[j] == float(b.qs[j]));

  // d = 254 / 127 = 2 exactly: q = roundf(x / 2); an all-zero block gets d = 0 and zeros.
  std::vector<float> x2(64, 0.0f);
  x2[0] = -254.0f;
  x2[1] = 3.0f;   // 1.5 -> 2
  x2[2] = -1.0f;  // -0.5 -> -1
  x2[3] = 0.9f;   // 0.45 -> 0
  tk::BlockQ8_0 b2[2];
  tk::quantize_row(T::q8_0, b2, x2.data(), 64);
  CHECK(b2[0].d == tk::fp32_to_fp16(2.0f));
  CHECK(b2[0].qs[0] == -127);
  CHECK(b2[0].qs[1] == 2);
  CHECK(b2[0].qs[2] == -1);
  CHECK(b2[0].qs[3] == 0);
  CHECK(b2[1].d == 0);
  for (int8_t q : b2[1].qs) CHECK(q == 0);
}

TEST_CASE("Q4_0 quantization: a block by hand", "[kernels][quant]") {
  // The value of largest magnitude is -8 (x[5]), so d = -8 / -8 = 1, id = 1 and
  // q = min(15, (int8)(x + 8.5)).
  std::vector<float> x(32, 0.0f);
  x[0] = 7.0f;     // 15.5 -> 15
  x[1] = 7.6f;     // 16.1 -> 16 -> 15 (clipped)
  x[2] = -0.6f;    // 7.9 -> 7
  x[3] = 0.4f;     // 8.9 -> 8
  x[4] = 0.5f;     // 9.0 -> 9
  x[5] = -8.0f;    // 0.5 -> 0
  x[6] = -7.5f;    // 1.0 -> 1
  x[7] = 3.2f;     // 11.7 -> 11
  x[16] = -1.0f;   // 7.5 -> 7
  x[17] = 2.0f;    // 10.5 -> 10
  x[18] = -7.9f;   // 0.6 -> 0
  x[31] = 8.0f;    // 16.5 -> 16 -> 15 (equal magnitude to -8, but later: not the max)
  // x[j] = 0 elsewhere: 8.5 -> 8.
  const uint8_t want_lo[16] = {15, 15, 7, 8, 9, 0, 1, 11, 8, 8, 8, 8, 8, 8, 8, 8};
  const uint8_t want_hi[16] = {7, 10, 0, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 15};
  tk::BlockQ4_0 b;
  tk::quantize_row(T::q4_0, &b, x.data(), 32);
  CHECK(b.d == 0x3C00);  // 1.0
  const uint8_t want_qs[16] = {0x7F, 0xAF, 0x07, 0x88, 0x89, 0x80, 0x81, 0x8B,
                               0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0xF8};
  for (int j = 0; j < 16; j++) {
    INFO("j " << j);
    CHECK(want_qs[j] == (want_lo[j] | want_hi[j] << 4));  // the table above, spelled out
    CHECK(b.qs[j] == want_qs[j]);
  }
  std::vector<float> y(32);
  tk::dequantize_row(T::q4_0, y.data(), &b, 32);
  for (int j = 0; j < 16; j++) {
    CHECK(y[j] == float(want_lo[j]) - 8.0f);
    CHECK(y[16 + j] == float(want_hi[j]) - 8.0f);
  }

  // The first value of largest magnitude wins: here +8 (x[3]) before -8 (x[10]), so d = -1,
  // id = -1: 8 -> (int8)(-8 + 8.5) = 0, -8 -> 16 -> 15, 1 -> 7.
  std::vector<float> x2(32, 0.0f);
  x2[3] = 8.0f;
  x2[10] = -8.0f;
  x2[20] = 1.0f;
  tk::BlockQ4_0 b2;
  tk::quantize_row(T::q4_0, &b2, x2.data(), 32);
  CHECK(b2.d == 0xBC00);  // -1.0
  CHECK(b2.qs[3] == 0x80);
  CHECK(b2.qs[10] == 0x8F);
  CHECK(b2.qs[4] == 0x78);  // x2[20] = 1 -> 7 in the high nibble of byte 4
  std::vector<float> y2(32);
  tk::dequantize_row(T::q4_0, y2.data(), &b2, 32);
  CHECK(y2[3] == 8.0f);
  CHECK(y2[10] == -7.0f);  // clipped: one step off
  CHECK(y2[20] == 1.0f);

  // All zero: d = 0 / -8 = -0 (as in ggml), every nibble 8 (value 0).
  std::vector<float> z(32, 0.0f);
  tk::BlockQ4_0 bz;
  tk::quantize_row(T::q4_0, &bz, z.data(), 32);
  CHECK(bz.d == 0x8000);
  for (uint8_t q : bz.qs) CHECK(q == 0x88);
}

TEST_CASE("Q8_0 and Q4_0 round trips stay within their step", "[kernels][quant]") {
  std::mt19937 rng(31);
  for (float scale : {0.05f, 1.0f, 300.0f}) {  // d stays a normal half
    const int n = 4096;
    auto x = random_floats(rng, n, -scale, scale);
    for (int i = 0; i < 32; i++) x[i] = 0.0f;  // an all-zero block
    x[100] = 5 * scale;                        // an outlier
    const auto q8 = quantize_q8_0(x);
    const auto q4 = quantize_q4_0(x);
    std::vector<float> y8(n), y4(n);
    tk::dequantize_row(T::q8_0, y8.data(), q8.data(), n);
    tk::dequantize_row(T::q4_0, y4.data(), q4.data(), n);
    for (int b = 0; b < n / 32; b++) {
      const float d8 = tk::fp16_to_fp32(q8[b].d), d4 = std::fabs(tk::fp16_to_fp32(q4[b].d));
      float amax = 0.0f;
      for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[b * 32 + j]));
      // d itself is rounded to fp16 (relative error <= 2^-11) while x / d used the float d.
      CHECK(std::fabs(d8 - amax / 127) <= amax / 127 * 0x1p-11f);
      for (int j = 0; j < 32; j++) {
        const int i = b * 32 + j;
        INFO("scale " << scale << " i " << i);
        CHECK(q8[b].qs[j] >= -127);
        CHECK(std::fabs(x[i] - y8[i]) <= d8 * (0.5f + 128 * 0x1p-11f));
        // Q4_0: half a step, or one step for the values clipped at +7 (opposite the max).
        CHECK(std::fabs(x[i] - y4[i]) <= d4 * (1.0f + 8 * 0x1p-11f));
      }
    }
  }
}

namespace {

// Weights, x and the reference answer for one shape, in every type.
struct QuantCase {
  int rows, n;
  std::vector<uint16_t> wf16;
  std::vector<float> x;
  std::vector<tk::BlockQ8_0> w8, w8_real, x8;
  std::vector<tk::BlockQ4_0> w4, w4_real;
  std::vector<double> mag16;  // per row: sum |w * x| for f16
};

QuantCase make_quant_case(std::mt19937& rng, int rows, int n) {
  QuantCase c;
  c.rows = rows;
  c.n = n;
  const auto wf = random_floats(rng, size_t(rows) * n);
  c.wf16 = to_f16(wf);
  c.x = random_floats(rng, n, -3.0f, 3.0f);
  c.mag16.assign(rows, 0.0);
  for (int i = 0; i < rows; i++) {
    for (int j = 0; j < n; j++) {
      c.mag16[i] += std::fabs(double(tk::fp16_to_fp32(c.wf16[size_t(i) * n + j])) * c.x[j]);
    }
  }
  if (n % tk::kBlock == 0) {
    c.w8 = random_q8_0(rng, rows, n);
    c.w4 = random_q4_0(rng, rows, n);
    c.w8_real = quantize_q8_0(wf);  // the whole matrix as one row: same blocks
    c.w4_real = quantize_q4_0(wf);
    c.x8 = quantize_q8_0(c.x);
  }
  return c;
}

}  // namespace

TEST_CASE("f16, Q8_0 and Q4_0 matvec of every ISA match the reference", "[kernels][matvec]") {
  std::mt19937 rng(17);
  // Multiples of 32 for the block types (block counts 1, 2, 3, 9, 64, 65, 176, and 257 and 261:
  // past the 8192 columns the x86 paths prepare x for at a time), and f16 also at sizes that leave
  // every kind of tail.
  // Rows: enough for the AVX-512 path's groups of 16 rows and the 4-row and 1-row rest.
  for (int n : {1, 7, 15, 16, 17, 31, 33, 47, 100, 32, 64, 96, 288, 2048, 2080, 5632, 8224, 8352}) {
    const int rows = n > 5632 ? 19 : n >= 2048 ? 21 : 37;
    const QuantCase c = make_quant_case(rng, rows, n);
    for (Isa isa : runnable_isas()) {
      const tk::IsaKernels& ops = tk::isa_kernels(isa);
      const tk::IsaKernels& ref = tk::isa_kernels(Isa::scalar);
      for (RowRange rr : row_ranges(rows)) {
        INFO("isa " << tk::isa_name(isa) << " n " << n << " rows [" << rr.r0 << ", " << rr.r1 << ")");
        std::vector<float> want(rows, NAN), got(rows, NAN);
        ref[T::f16].matvec(want.data(), c.wf16.data(), c.x.data(), n, rr.r0, rr.r1);
        ops[T::f16].matvec(got.data(), c.wf16.data(), c.x.data(), n, rr.r0, rr.r1);
        for (int i = 0; i < rows; i++) {
          if (i < rr.r0 || i >= rr.r1) {
            CHECK(std::isnan(got[i]));  // rows outside the range are not written
          } else {
            CHECK(std::fabs(double(got[i]) - want[i]) <= 1e-5 * c.mag16[i] + 1e-6);
          }
        }
        if (n % tk::kBlock != 0) continue;
        // Block types: the int sums are exact and the float order is the reference's, so
        // bit-identical results, on random full-range quants and on quantized floats.
        for (int data = 0; data < 2; data++) {
          INFO((data == 0 ? "random quants" : "quantized floats"));
          const auto& w8 = data == 0 ? c.w8 : c.w8_real;
          const auto& w4 = data == 0 ? c.w4 : c.w4_real;
          std::vector<float> want8(rows, NAN), got8(rows, NAN), want4(rows, NAN), got4(rows, NAN);
          ref[T::q8_0].matvec(want8.data(), w8.data(), c.x8.data(), n, rr.r0, rr.r1);
          ops[T::q8_0].matvec(got8.data(), w8.data(), c.x8.data(), n, rr.r0, rr.r1);
          ref[T::q4_0].matvec(want4.data(), w4.data(), c.x8.data(), n, rr.r0, rr.r1);
          ops[T::q4_0].matvec(got4.data(), w4.data(), c.x8.data(), n, rr.r0, rr.r1);
          for (int i = 0; i < rows; i++) {
            INFO("row " << i);
            if (i < rr.r0 || i >= rr.r1) {
              CHECK(std::isnan(got8[i]));
              CHECK(std::isnan(got4[i]));
            } else {
              CHECK(bits_of(got8[i]) == bits_of(want8[i]));
              CHECK(bits_of(got4[i]) == bits_of(want4[i]));
            }
          }
        }
      }
    }
  }
}

TEST_CASE("Q8_0 and Q4_0 matvec of every ISA at the extreme quants", "[kernels][matvec]") {
  // The largest block sums there are: every weight quant at its end of the range against every x
  // quant at 127 or -127 (Q8_0's quantize_row of constant floats). The AVX-512 Q4_0 kernel reduces
  // its partial sums in int16 (|partial| <= 8128 by its bound); this is where the bound is tight.
  const int rows = 21, n = 2048, nb = n / tk::kBlock;
  for (int sign : {1, -1}) {
    for (uint8_t nibbles : {uint8_t(0x00), uint8_t(0xFF), uint8_t(0x0F), uint8_t(0xF0)}) {
      const std::vector<float> xf(n, float(sign) * 2.5f);
      const std::vector<tk::BlockQ8_0> x8 = quantize_q8_0(xf);
      REQUIRE(x8[0].qs[0] == sign * 127);
      std::vector<tk::BlockQ4_0> w4(size_t(rows) * nb);
      std::vector<tk::BlockQ8_0> w8(size_t(rows) * nb);
      for (auto& b : w4) {
        b.d = tk::fp32_to_fp16(0.25f);
        std::fill(std::begin(b.qs), std::end(b.qs), nibbles);
      }
      for (auto& b : w8) {
        b.d = tk::fp32_to_fp16(0.25f);
        std::fill(std::begin(b.qs), std::end(b.qs), int8_t(nibbles == 0 ? -128 : 127));
      }
      for (Isa isa : runnable_isas()) {
        INFO("isa " << tk::isa_name(isa) << " sign " << sign << " nibbles " << int(nibbles));
        std::vector<float> want4(rows), got4(rows), want8(rows), got8(rows);
        tk::isa_kernels(Isa::scalar)[T::q4_0].matvec(want4.data(), w4.data(), x8.data(), n, 0, rows);
        tk::isa_kernels(isa)[T::q4_0].matvec(got4.data(), w4.data(), x8.data(), n, 0, rows);
        tk::isa_kernels(Isa::scalar)[T::q8_0].matvec(want8.data(), w8.data(), x8.data(), n, 0, rows);
        tk::isa_kernels(isa)[T::q8_0].matvec(got8.data(), w8.data(), x8.data(), n, 0, rows);
        // Every block's sum is 32 * (q - 8) * x, the same in every block.
        const int q_lo = (nibbles & 0x0F) - 8, q_hi = (nibbles >> 4) - 8;
        const float block = float(16 * (q_lo + q_hi) * sign * 127);
        CHECK(want4[0] != 0.0f);
        CHECK(std::fabs(want4[0] - block * 0.25f * tk::fp16_to_fp32(x8[0].d) * nb) <=
              1e-3f * std::fabs(want4[0]));
        for (int i = 0; i < rows; i++) {
          CHECK(bits_of(got4[i]) == bits_of(want4[i]));
          CHECK(bits_of(got8[i]) == bits_of(want8[i]));
        }
      }
    }
  }
}

TEST_CASE("Q8_0 and Q4_0 reference matvec by hand", "[kernels][matvec]") {
  // One row of two blocks. Q8_0: block 0 all 2 (d 0.5) against x all 3 (d 0.25): 32 * 6 = 192,
  // times 0.125 = 24; block 1 alternating -128 / 127 (d 1) against x -127 / 127 (d 2):
  // 16 * (128 * 127 + 127 * 127) = 518160, times 2. Q4_0: nibbles 0 (-8) low, 15 (+7) high, d 1.
  tk::BlockQ8_0 w[2], x[2];
  w[0].d = tk::fp32_to_fp16(0.5f);
  x[0].d = tk::fp32_to_fp16(0.25f);
  w[1].d = tk::fp32_to_fp16(1.0f);
  x[1].d = tk::fp32_to_fp16(2.0f);
  for (int j = 0; j < 32; j++) {
    w[0].qs[j] = 2;
    x[0].qs[j] = 3;
    w[1].qs[j] = static_cast<int8_t>(j % 2 ? 127 : -128);
    x[1].qs[j] = static_cast<int8_t>(j % 2 ? 127 : -127);
  }
  tk::BlockQ4_0 w4[2];
  for (auto& b : w4) {
    b.d = tk::fp32_to_fp16(1.0f);
    for (uint8_t& q : b.qs) q = 0xF0;
  }
  const float want8 = 24.0f + 518160.0f * 2.0f;
  // Block 0: (-8 * 3) * 16 + (7 * 3) * 16 = -48, * 0.25; block 1: x[0..15] and x[16..31] both
  // alternate -127 / 127: -8 * 0 + 7 * 0 = 0.
  const float want4 = -48.0f * 0.25f;
  for (Isa isa : runnable_isas()) {
    INFO("isa " << tk::isa_name(isa));
    float y = NAN;
    tk::isa_kernels(isa)[T::q8_0].matvec(&y, w, x, 64, 0, 1);
    CHECK(y == want8);
    tk::isa_kernels(isa)[T::q4_0].matvec(&y, w4, x, 64, 0, 1);
    CHECK(y == want4);
  }
}

TEST_CASE("every ISA's f16 matvec is its f32 matvec on the widened rows", "[kernels][matvec]") {
  // Batches of f16 weights rely on it: they widen a tile and run the f32 batched kernel.
  std::mt19937 rng(19);
  for (int n : {1, 7, 8, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 2048, 2085}) {
    const int rows = 9;
    const QuantCase c = make_quant_case(rng, rows, n);
    std::vector<float> wide(c.wf16.size());
    tk::isa_kernels(Isa::scalar)[T::f16].dequantize_row(wide.data(), c.wf16.data(), static_cast<int>(wide.size()));
    for (Isa isa : runnable_isas()) {
      INFO("isa " << tk::isa_name(isa) << " n " << n);
      const tk::IsaKernels& ops = tk::isa_kernels(isa);
      std::vector<float> from16(rows), from32(rows);
      ops[T::f16].matvec(from16.data(), c.wf16.data(), c.x.data(), n, 0, rows);
      ops[T::f32].matvec(from32.data(), wide.data(), c.x.data(), n, 0, rows);
      for (int i = 0; i < rows; i++) CHECK(bits_of(from16[i]) == bits_of(from32[i]));
    }
  }
}

TEST_CASE("f16, Q8_0 and Q4_0 results do not depend on the row range or the alignment",
          "[kernels][matvec]") {
  std::mt19937 rng(77);
  for (int n : {47, 96, 288, 2080, 8352}) {
    const int rows = n > 5632 ? 6 : 11;
    const QuantCase c = make_quant_case(rng, rows, n);
    const bool blocks = n % tk::kBlock == 0;
    for (Isa isa : runnable_isas()) {
      INFO("isa " << tk::isa_name(isa) << " n " << n);
      const tk::IsaKernels& ops = tk::isa_kernels(isa);
      std::vector<float> whole16(rows), whole8(rows), whole4(rows);
      ops[T::f16].matvec(whole16.data(), c.wf16.data(), c.x.data(), n, 0, rows);
      if (blocks) {
        ops[T::q8_0].matvec(whole8.data(), c.w8_real.data(), c.x8.data(), n, 0, rows);
        ops[T::q4_0].matvec(whole4.data(), c.w4_real.data(), c.x8.data(), n, 0, rows);
      }
      for (int r0 = 0; r0 < rows; r0++) {
        for (int r1 = r0 + 1; r1 <= rows; r1++) {
          std::vector<float> p16(rows, NAN), p8(rows, NAN), p4(rows, NAN);
          ops[T::f16].matvec(p16.data(), c.wf16.data(), c.x.data(), n, r0, r1);
          if (blocks) {
            ops[T::q8_0].matvec(p8.data(), c.w8_real.data(), c.x8.data(), n, r0, r1);
            ops[T::q4_0].matvec(p4.data(), c.w4_real.data(), c.x8.data(), n, r0, r1);
          }
          for (int i = r0; i < r1; i++) {
            CHECK(bits_of(p16[i]) == bits_of(whole16[i]));
            if (blocks) {
              CHECK(bits_of(p8[i]) == bits_of(whole8[i]));
              CHECK(bits_of(p4[i]) == bits_of(whole4[i]));
            }
          }
        }
      }
      // The same bytes at every even offset within 64 (blocks are 2-byte aligned; GGUF gives no
      // more within a row), x moved too.
      for (int shift = 2; shift < 64; shift += 2) {
        INFO("shift " << shift);
        std::vector<uint64_t> wbuf(size_t(rows) * n * 34 / 32 / 8 + size_t(rows) * n / 4 + 16);
        std::vector<uint64_t> xbuf(size_t(n) * 34 / 32 / 8 + size_t(n) / 2 + 16);
        char* wp = reinterpret_cast<char*>(wbuf.data()) + shift;
        char* xp = reinterpret_cast<char*>(xbuf.data()) + shift;
        std::vector<float> y(rows);
        std::memcpy(wp, c.wf16.data(), c.wf16.size() * 2);
        const float* xf = c.x.data();
        if (shift % 4 == 0) {  // a float* must be 4-byte aligned
          std::memcpy(xp, c.x.data(), c.x.size() * 4);
          xf = reinterpret_cast<const float*>(xp);
        }
        ops[T::f16].matvec(y.data(), reinterpret_cast<const uint16_t*>(wp), xf, n, 0, rows);
        CHECK(y == whole16);
        if (!blocks) continue;
        std::memcpy(xp, c.x8.data(), c.x8.size() * sizeof(tk::BlockQ8_0));
        const auto* xb = reinterpret_cast<const tk::BlockQ8_0*>(xp);
        std::memcpy(wp, c.w8_real.data(), c.w8_real.size() * sizeof(tk::BlockQ8_0));
        ops[T::q8_0].matvec(y.data(), reinterpret_cast<const tk::BlockQ8_0*>(wp), xb, n, 0, rows);
        CHECK(y == whole8);
        std::memcpy(wp, c.w4_real.data(), c.w4_real.size() * sizeof(tk::BlockQ4_0));
        ops[T::q4_0].matvec(y.data(), reinterpret_cast<const tk::BlockQ4_0*>(wp), xb, n, 0, rows);
        CHECK(y == whole4);
      }
    }
  }
}

namespace {

// The NaN-filled outputs of `count` tokens with a row stride wider than the matrix.
std::vector<float> nan_outputs(int count, int ldy) { return std::vector<float>(size_t(count) * ldy, NAN); }

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("f32 matmul of every ISA gives its matvec's floats, token by token", "[kernels][matmul]") {
  std::mt19937 rng(23);
  for (int n : {1, 7, 16, 17, 31, 33, 48, 64, 172, 2048, 5632}) {
    const int rows = n >= 2048 ? 13 : 37;
    const auto w = random_floats(rng, size_t(rows) * n);
    for (int count : {1, 2, 3, 5, 8, 17}) {
      const int ldx = n + 5, ldy = rows + 3;
      const auto x = random_floats(rng, size_t(count) * ldx, -2.0f, 2.0f);
      for (Isa isa : runnable_isas()) {
        for (RowRange rr : row_ranges(rows)) {
          INFO("isa " << tk::isa_name(isa) << " n " << n << " count " << count << " rows [" << rr.r0
                      << ", " << rr.r1 << ")");
          auto want = nan_outputs(count, ldy), got = nan_outputs(count, ldy);
          for (int t = 0; t < count; t++) {
            tk::isa_kernels(isa)[T::f32].matvec(want.data() + size_t(t) * ldy, w.data(),
                                    x.data() + size_t(t) * ldx, n, rr.r0, rr.r1);
          }
          tk::isa_kernels(isa)[T::f32].matmul(got.data(), ldy, w.data(), x.data(), ldx, n, count, rr.r0, rr.r1);
          CHECK(same_bits(got, want));  // NaN bits included: rows outside the range stay unwritten
        }
      }
    }
  }
}

TEST_CASE("Q8_0 and Q4_0 matmul of every ISA give its matvec's floats, token by token",
          "[kernels][matmul]") {
  std::mt19937 rng(29);
  // Block counts 1, 2, 3, 5, 9, 64, 176, and 257 and 261 (past the 8192 columns x86 prepares x for
  // at a time).
  for (int n : {32, 64, 96, 160, 288, 2048, 5632, 8224, 8352}) {
    const int rows = n > 5632 ? 7 : n >= 2048 ? 13 : 37;
    const int nb = n / tk::kBlock;
    const auto w8 = random_q8_0(rng, rows, n);
    const auto w4 = random_q4_0(rng, rows, n);
    for (int count : {1, 2, 3, 4, 5, 8, 17}) {
      const int ldx = nb + 1, ldy = rows + 3;
      std::vector<tk::BlockQ8_0> x(size_t(count) * ldx);
      for (int t = 0; t < count; t++) {
        const auto xf = random_floats(rng, n, -3.0f, 3.0f);
        tk::quantize_row(T::q8_0, x.data() + size_t(t) * ldx, xf.data(), n);
      }
      for (Isa isa : runnable_isas()) {
        const tk::IsaKernels& mv = tk::isa_kernels(isa);
        const tk::IsaKernels& mm = tk::isa_kernels(isa);
        for (RowRange rr : row_ranges(rows)) {
          INFO("isa " << tk::isa_name(isa) << " n " << n << " count " << count << " rows [" << rr.r0
                      << ", " << rr.r1 << ")");
          auto want8 = nan_outputs(count, ldy), got8 = nan_outputs(count, ldy);
          auto want4 = nan_outputs(count, ldy), got4 = nan_outputs(count, ldy);
          for (int t = 0; t < count; t++) {
            mv[T::q8_0].matvec(want8.data() + size_t(t) * ldy, w8.data(), x.data() + size_t(t) * ldx, n,
                    rr.r0, rr.r1);
            mv[T::q4_0].matvec(want4.data() + size_t(t) * ldy, w4.data(), x.data() + size_t(t) * ldx, n,
                    rr.r0, rr.r1);
          }
          mm[T::q8_0].matmul(got8.data(), ldy, w8.data(), x.data(), ldx, n, count, rr.r0, rr.r1);
          mm[T::q4_0].matmul(got4.data(), ldy, w4.data(), x.data(), ldx, n, count, rr.r0, rr.r1);
          CHECK(same_bits(got8, want8));
          CHECK(same_bits(got4, want4));
        }
      }
    }
  }
}

TEST_CASE("interleaved Q8_0 and Q4_0 blocks: the layout by hand and back", "[kernels][interleaved]") {
  // Two rows of one block each (the group padded to 16 rows): piece k of row r sits at 64 k + 4 r
  // of the block's quants; then the 16 scales.
  std::vector<tk::BlockQ4_0> w4(2);
  std::vector<tk::BlockQ8_0> w8(2);
  for (int r = 0; r < 2; r++) {
    w4[r].d = w8[r].d = static_cast<uint16_t>(0x3C00 + r);
    for (int i = 0; i < 16; i++) w4[r].qs[i] = static_cast<uint8_t>(16 * r + i);
    for (int i = 0; i < 32; i++) w8[r].qs[i] = static_cast<int8_t>(i - 10 * r);
  }
  std::vector<uint8_t> p4(tk::interleaved_bytes(T::q4_0, 2, 32)), p8(tk::interleaved_bytes(T::q8_0, 2, 32));
  REQUIRE(p4.size() == 16 * 16 + 32);
  REQUIRE(p8.size() == 16 * 32 + 32);
  tk::interleave(T::q4_0, p4.data(), w4.data(), 2, 32);
  tk::interleave(T::q8_0, p8.data(), w8.data(), 2, 32);
  CHECK(p4[64 * 1 + 4 * 1 + 2] == 16 + 4 + 2);  // row 1, piece 1, byte 2: qs[6]
  CHECK(p4[64 * 3 + 4 * 0 + 3] == 15);          // row 0, piece 3, byte 3: qs[15]
  CHECK(p4[64 * 0 + 4 * 5] == 0x88);            // a padded row: zeros (q = 8)
  CHECK(p8[64 * 7 + 4 * 1 + 3] == static_cast<uint8_t>((31 - 10) ^ 0x80));  // row 1, qs[31] + 128
  uint16_t d1 = 0;
  std::memcpy(&d1, p4.data() + 256 + 2, 2);
  CHECK(d1 == 0x3C01);
  std::memcpy(&d1, p8.data() + 512 + 2, 2);
  CHECK(d1 == 0x3C01);
  for (int r = 0; r < 2; r++) {
    tk::BlockQ4_0 b4;
    tk::BlockQ8_0 b8;
    tk::deinterleave_row(T::q4_0, &b4, p4.data(), r, 32);
    tk::deinterleave_row(T::q8_0, &b8, p8.data(), r, 32);
    CHECK(std::memcmp(&b4, &w4[r], sizeof b4) == 0);
    CHECK(std::memcmp(&b8, &w8[r], sizeof b8) == 0);
  }
}

// Random Q8_0 and Q4_0 matrices of rows x n and their interleaved copies.
struct InterleavedRandom {
  std::vector<tk::BlockQ8_0> w8;
  std::vector<tk::BlockQ4_0> w4;
  std::vector<uint8_t> p8, p4;
};
InterleavedRandom interleaved_random(std::mt19937& rng, int rows, int n) {
  InterleavedRandom m{random_q8_0(rng, rows, n), random_q4_0(rng, rows, n),
                      std::vector<uint8_t>(tk::interleaved_bytes(T::q8_0, rows, n)),
                      std::vector<uint8_t>(tk::interleaved_bytes(T::q4_0, rows, n))};
  tk::interleave(T::q8_0, m.p8.data(), m.w8.data(), rows, n);
  tk::interleave(T::q4_0, m.p4.data(), m.w4.data(), rows, n);
  return m;
}

TEST_CASE("interleaving copies every row whole and pads the last group with zeros",
          "[kernels][interleaved]") {
  // Whole groups take the ISA's copy (TypeKernels), a padded last group the reference loops: both
  // must give the layout that deinterleave reads back, and every ISA's copy the same bytes.
  std::mt19937 rng(5);
  for (int n : {32, 96, 2048}) {
    for (int rows : {16, 37, 64}) {
      const int nb = n / tk::kBlock;
      const auto [w8, w4, p8, p4] = interleaved_random(rng, rows, n);
      INFO("n " << n << " rows " << rows);
      for (int r = 0; r < (rows + 15) / 16 * 16; r++) {
        std::vector<tk::BlockQ8_0> b8(nb);
        std::vector<tk::BlockQ4_0> b4(nb);
        tk::deinterleave_row(T::q8_0, b8.data(), p8.data(), r, n);
        tk::deinterleave_row(T::q4_0, b4.data(), p4.data(), r, n);
        if (r < rows) {
          CHECK(std::memcmp(b8.data(), w8.data() + size_t(r) * nb, nb * sizeof(tk::BlockQ8_0)) == 0);
          CHECK(std::memcmp(b4.data(), w4.data() + size_t(r) * nb, nb * sizeof(tk::BlockQ4_0)) == 0);
        } else {  // padding: scale 0 and quants 0 (Q4_0 nibbles 8)
          for (int b = 0; b < nb; b++) {
            CHECK(b8[b].d == 0);
            CHECK(b4[b].d == 0);
            for (int8_t q : b8[b].qs) CHECK(q == 0);
            for (uint8_t q : b4[b].qs) CHECK(q == 0x88);
          }
        }
      }
      const int whole = rows / 16;
      const auto paths8 = simd_loop_paths(
          [](Isa isa) { return tk::isa_kernels(isa)[T::q8_0].interleave_groups; },
          tk::detail::interleave_groups_q8_0_portable<8>, tk::detail::interleave_groups_q8_0_portable<16>);
      const auto paths4 = simd_loop_paths(
          [](Isa isa) { return tk::isa_kernels(isa)[T::q4_0].interleave_groups; },
          tk::detail::interleave_groups_q4_0_portable<8>, tk::detail::interleave_groups_q4_0_portable<16>);
      for (std::size_t path = 0; path < paths8.size(); path++) {
        INFO("path " << paths8[path].name);
        std::vector<uint8_t> g8(p8.size()), g4(p4.size());
        paths8[path].fn(g8.data(), w8.data(), whole, nb);
        paths4[path].fn(g4.data(), w4.data(), whole, nb);
        CHECK(std::memcmp(g8.data(), p8.data(), tk::interleaved_bytes(T::q8_0, whole * 16, n)) == 0);
        CHECK(std::memcmp(g4.data(), p4.data(), tk::interleaved_bytes(T::q4_0, whole * 16, n)) == 0);
      }
    }
  }
}

TEST_CASE("quantize_row_q8_0 of every ISA gives the reference's bytes", "[kernels][quantize]") {
  std::mt19937 rng(43);
  // Blocks of every scale: d subnormal in fp16, normal, rounding to fp16's largest and past it,
  // an all-zero block, and exact halves (x * id landing on k + 0.5).
  std::vector<float> x;
  for (float scale : {1e-7f, 3e-5f, 1.0f, 300.0f, 8.3e6f, 1e30f}) {
    const auto r = random_floats(rng, 32 * 20, -scale, scale);
    x.insert(x.end(), r.begin(), r.end());
  }
  x.insert(x.end(), 32, 0.0f);
  for (int j = 0; j < 32; j++) x.push_back(j == 0 ? 127.0f : float(j) - 15.5f);
  const int n = int(x.size());
  std::vector<tk::BlockQ8_0> want(n / tk::kBlock);
  tk::isa_kernels(Isa::scalar)[T::q8_0].quantize_row(want.data(), x.data(), n);
  for (Isa isa : runnable_isas()) {
    INFO("isa " << tk::isa_name(isa));
    std::vector<tk::BlockQ8_0> got(want.size());
    tk::isa_kernels(isa)[T::q8_0].quantize_row(got.data(), x.data(), n);
    for (std::size_t b = 0; b < want.size(); b++) {
      INFO("block " << b);
      CHECK(got[b].d == want[b].d);
      CHECK(std::memcmp(got[b].qs, want[b].qs, tk::kBlock) == 0);
    }
  }
}

TEST_CASE("x block sums for the interleaved kernels take off the weights' offset", "[kernels][interleaved]") {
  std::mt19937 rng(41);
  const int n = 4096, nb = n / tk::kBlock;
  std::vector<tk::BlockQ8_0> x(nb);
  tk::quantize_row(T::q8_0, x.data(), random_floats(rng, n, -5.0f, 5.0f).data(), n);
  x[3].qs[0] = -127;  // the extremes Q8_0's quantize_row gives
  x[3].qs[1] = 127;
  std::vector<tk::XBlockSum> s8(nb), s4(nb);
  tk::sum_x_blocks(T::q8_0, s8.data(), x.data(), nb);
  tk::sum_x_blocks(T::q4_0, s4.data(), x.data(), nb);
  for (int b = 0; b < nb; b++) {
    int32_t sum = 0;
    for (int8_t q : x[b].qs) sum += q;
    INFO("block " << b);
    CHECK(s8[b].start == -128 * sum);
    CHECK(s4[b].start == -8 * sum);
    CHECK(s8[b].d == tk::fp16_to_fp32(x[b].d));
    CHECK(s4[b].d == s8[b].d);
  }
  for (Isa isa : runnable_isas()) {
    INFO("isa " << tk::isa_name(isa));
    std::vector<tk::XBlockSum> got(nb);
    for (int offset : {128, 8}) {
      tk::isa_kernels(isa).sum_x_blocks(got.data(), x.data(), nb, offset);
      const auto& want = offset == 128 ? s8 : s4;
      for (int b = 0; b < nb; b++) {
        CHECK(got[b].start == want[b].start);
        CHECK(got[b].d == want[b].d);
      }
    }
  }
}

TEST_CASE("interleaved Q8_0 and Q4_0 matmul of every ISA give the ggml layout's floats",
          "[kernels][interleaved]") {
  std::mt19937 rng(31);
  // Partial groups (rows % 16), a long row (8224 columns), and every token count up to a pass
  // of 8 and past it.
  for (int n : {32, 96, 2048, 8224}) {
    for (int rows : {1, 16, 37}) {
      const int nb = n / tk::kBlock;
      const auto [w8, w4, p8, p4] = interleaved_random(rng, rows, n);
      for (int r = 0; r < rows; r += 7) {  // rows come back out whole
        std::vector<tk::BlockQ4_0> b4(nb);
        tk::deinterleave_row(T::q4_0, b4.data(), p4.data(), r, n);
        CHECK(std::memcmp(b4.data(), w4.data() + size_t(r) * nb, nb * sizeof(tk::BlockQ4_0)) == 0);
      }
      for (int count : {1, 3, 8, 9, 17}) {
        const int ldx = nb + 1, ldy = rows + 3;
        std::vector<tk::BlockQ8_0> x(size_t(count) * ldx);
        for (int t = 0; t < count; t++) {
          const auto xf = random_floats(rng, n, -3.0f, 3.0f);
          tk::quantize_row(T::q8_0, x.data() + size_t(t) * ldx, xf.data(), n);
        }
        std::vector<tk::XBlockSum> sums8(x.size()), sums4(x.size());
        for (int t = 0; t < count; t++) {
          tk::sum_x_blocks(T::q8_0, sums8.data() + size_t(t) * ldx, x.data() + size_t(t) * ldx, nb);
          tk::sum_x_blocks(T::q4_0, sums4.data() + size_t(t) * ldx, x.data() + size_t(t) * ldx, nb);
        }
        for (Isa isa : runnable_isas()) {
          const tk::IsaKernels& mv = tk::isa_kernels(Isa::scalar);
          const tk::IsaKernels& mm = tk::isa_kernels(isa);
          for (int r0 : {0, 16}) {
            if (r0 >= rows) continue;
            INFO("isa " << tk::isa_name(isa) << " n " << n << " rows " << rows << " count " << count
                        << " from row " << r0);
            auto want8 = nan_outputs(count, ldy), got8 = nan_outputs(count, ldy);
            auto want4 = nan_outputs(count, ldy), got4 = nan_outputs(count, ldy);
            for (int t = 0; t < count; t++) {
              mv[T::q8_0].matvec(want8.data() + size_t(t) * ldy, w8.data(), x.data() + size_t(t) * ldx, n, r0, rows);
              mv[T::q4_0].matvec(want4.data() + size_t(t) * ldy, w4.data(), x.data() + size_t(t) * ldx, n, r0, rows);
            }
            mm[T::q8_0].matmul_interleaved(got8.data(), ldy, p8.data(), x.data(), sums8.data(), ldx, n, count, r0, rows);
            mm[T::q4_0].matmul_interleaved(got4.data(), ldy, p4.data(), x.data(), sums4.data(), ldx, n, count, r0, rows);
            CHECK(same_bits(got8, want8));  // rows outside [r0, rows) stay unwritten
            CHECK(same_bits(got4, want4));
          }
        }
      }
    }
  }
}

TEST_CASE("expf_elements gives libm's expf bit for bit", "[kernels][reference]") {
  // Every 97th of the 2^32 float bit patterns (all signs, exponents, NaNs), runs of 4093 so that
  // every run ends in a partial vector, computed in place (y == x); then uniform values where
  // softmax and SwiGLU live and glibc's edges (overflow, subnormal results, underflow to 0).
  std::vector<float> x, got;
  const auto exp_paths =
      simd_loop_paths([](Isa isa) { return tk::isa_kernels(isa).exp_f32; },
                      tk::detail::expf_elements_portable<8>, tk::detail::expf_elements_portable<16>);
  auto check = [&] {
    for (const auto& [name, exp_f32] : exp_paths) {
      got = x;
      exp_f32(got.data(), got.data(), static_cast<int>(got.size()));
      size_t wrong = 0;
      for (size_t i = 0; i < x.size(); i++) {
        if (bits_of(got[i]) != bits_of(std::exp(x[i]))) {
          if (wrong++ < 5) UNSCOPED_INFO("expf(" << x[i] << ") = " << std::exp(x[i]) << ", got " << got[i]);
        }
      }
      INFO("path " << name);
      CHECK(wrong == 0);
    }
  };
  constexpr uint64_t kStride = 97, kRun = 4093;
  for (uint64_t u = 0; u < (uint64_t(1) << 32);) {
    x.clear();
    for (; x.size() < kRun && u < (uint64_t(1) << 32); u += kStride) {
      float f;
      const uint32_t b = static_cast<uint32_t>(u);
      std::memcpy(&f, &b, 4);
      x.push_back(f);
    }
    check();
  }
  std::mt19937 rng(43);
  std::uniform_real_distribution<float> wide(-110.0f, 90.0f), near(-20.0f, 2.0f);
  x.clear();
  for (int i = 0; i < 200000; i++) x.push_back(i % 2 ? wide(rng) : near(rng));
  for (float edge : {88.0f, 88.72283f, 88.72284f, -87.33654f, -103.27893f, -103.97208f, -104.0f,
                     0.0f, -0.0f, 1e-30f, -1e-45f, INFINITY, -INFINITY, NAN}) {
    x.push_back(edge);
    x.push_back(std::nextafter(edge, 0.0f));
  }
  check();
  x.resize(5);  // shorter than a vector
  check();
}

TEST_CASE("key_scores gives dot's float over the scale for every query and key", "[kernels][reference]") {
  std::mt19937 rng(37);
  const float scale = 8.0f;
  const auto paths =
      simd_loop_paths([](Isa isa) { return tk::isa_kernels(isa).key_scores; },
                      tk::detail::key_scores_portable<8>, tk::detail::key_scores_portable<16>);
  for (int n : {1, 7, 8, 64, 100}) {
    for (int count : {1, 7, 16, 17, 33, 70}) {
      const auto rows = random_floats(rng, size_t(count) * n);  // key j: rows + j * n
      const int blocks = (count + tk::kKeyBlock - 1) / tk::kKeyBlock;
      // Positions past count in the last block hold garbage: never used.
      std::vector<float> keys(size_t(blocks) * tk::kKeyBlock * n, 1e30f);
      for (int j = 0; j < count; j++) {
        for (int i = 0; i < n; i++) keys[tk::key_block_offset(j, i, n)] = rows[size_t(j) * n + i];
      }
      for (int queries : {1, 2, 3, 8, 9}) {
        const std::ptrdiff_t q_stride = n + 1, out_stride = count + 2;
        const auto q = random_floats(rng, size_t(queries) * q_stride);
        for (const auto& [name, key_scores] : paths) {
          INFO("path " << name << " n " << n << " count " << count << " queries " << queries);
          std::vector<float> got(size_t(queries) * out_stride, NAN);
          key_scores(got.data(), out_stride, q.data(), q_stride, queries, keys.data(), count, n, scale);
          for (int k = 0; k < queries; k++) {
            for (int j = 0; j < count; j++) {
              const float want = tk::dot(q.data() + k * q_stride, rows.data() + size_t(j) * n, n) / scale;
              CHECK(bits_of(got[k * out_stride + j]) == bits_of(want));
            }
            CHECK(std::isnan(got[k * out_stride + count]));  // nothing past count is written
          }
        }
      }
    }
  }
}

TEST_CASE("softmax_rows gives softmax's floats for each row", "[kernels][reference]") {
  std::mt19937 rng(43);
  for (int rows : {1, 3, 8, 9, 17}) {
    for (int n : {1, 5, 100}) {
      const std::ptrdiff_t stride = n + 3;
      auto x = random_floats(rng, size_t(rows) * stride);
      for (float& v : x) v *= 20.0f;
      auto want = x;
      for (int r = 0; r < rows; r++) tk::softmax(want.data() + r * stride, n);
      tk::softmax_rows(x.data(), stride, rows, n);
      for (std::size_t i = 0; i < x.size(); i++) CHECK(bits_of(x[i]) == bits_of(want[i]));
    }
  }
}

TEST_CASE("weighted_sums give the floats of axpy row after row", "[kernels][reference]") {
  std::mt19937 rng(41);
  const auto paths =
      simd_loop_paths([](Isa isa) { return tk::isa_kernels(isa).weighted_sums; },
                      tk::detail::weighted_sums_portable<8>, tk::detail::weighted_sums_portable<16>);
  for (int n : {1, 15, 16, 17, 64, 100, 128}) {
    for (int count : {1, 2, 9, 65}) {
      for (int queries : {1, 2, 3, 8, 9}) {
        const std::ptrdiff_t stride = n + 5, w_stride = count + 1, out_stride = n + 1;
        const auto w = random_floats(rng, size_t(queries) * w_stride);
        const auto rows = random_floats(rng, size_t(count) * stride);
        std::vector<float> want(size_t(queries) * out_stride, 0.0f);
        for (int k = 0; k < queries; k++) {
          for (int r = 0; r < count; r++) {
            tk::axpy(want.data() + k * out_stride, w[k * w_stride + r], rows.data() + r * stride, n);
          }
        }
        for (const auto& [name, weighted_sums] : paths) {
          INFO("path " << name << " n " << n << " count " << count << " queries " << queries);
          std::vector<float> got(size_t(queries) * out_stride, NAN);
          weighted_sums(got.data(), out_stride, w.data(), w_stride, queries, rows.data(), stride, count, n);
          for (int k = 0; k < queries; k++) {
            for (int i = 0; i < n; i++) CHECK(bits_of(got[k * out_stride + i]) == bits_of(want[k * out_stride + i]));
            CHECK(std::isnan(got[k * out_stride + n]));  // nothing past n is written
          }
        }
      }
    }
  }
}
