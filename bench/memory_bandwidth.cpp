#include "memory_bandwidth.hpp"

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <vector>

#include <sys/mman.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace troupe::bench {

namespace {


// Each kernel sums n floats (n a multiple of 64) with four independent accumulators, so that the
// loads, not the add latency, are the limit. The sum goes to a sink so the loads cannot be dropped.
float sum_scalar(const float* p, size_t n) {
  float a[8] = {};
  for (size_t i = 0; i < n; i += 8)
    for (int k = 0; k < 8; ++k) a[k] += p[i + k];
  float s = 0;
  for (float v : a) s += v;
  return s;
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) float sum_avx2(const float* p, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

__attribute__((target("avx512f"))) float sum_avx512(const float* p, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  // Reduce through memory: GCC 12's _mm512_reduce_add_ps trips -Wuninitialized in its own header.
  float out[16];
  _mm512_storeu_ps(out, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  float s = 0;
  for (float v : out) s += v;
  return s;
}
#endif

using SumFn = float (*)(const float*, size_t);

// The widest loads this CPU has, chosen at run time so one binary runs everywhere.
SumFn pick_kernel(const char** isa) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) { *isa = "avx512"; return sum_avx512; }
  if (__builtin_cpu_supports("avx2")) { *isa = "avx2"; return sum_avx2; }
#endif
  *isa = "scalar";
  return sum_scalar;
}

volatile float g_sink;  // keeps the sums (and so the loads) alive

}  // namespace

struct ReadProbe::Readers {
  SumFn sum = nullptr;
  const char* isa = nullptr;
  float* buf = nullptr;
  std::size_t per_thread = 0;  // floats a thread reads, a multiple of 64
  std::size_t bytes = 0;
  // Two phases a pass: start together; the caller stops the clock once everyone is done.
  std::barrier<> sync;
  bool stop = false;  // read by the workers after a start phase
  std::vector<std::thread> workers;

  Readers(unsigned threads, std::size_t mib) : sync(static_cast<std::ptrdiff_t>(threads)) {
    sum = pick_kernel(&isa);
    per_thread = (mib << 20) / sizeof(float) / threads / 64 * 64;
    if (per_thread == 0) {
      throw std::runtime_error("a buffer of " + std::to_string(mib) + " MiB is too small for " +
                               std::to_string(threads) + " threads");
    }
    bytes = per_thread * threads * sizeof(float);
    // 2 MiB alignment lets the kernel back the buffer with huge pages, as the engine's weights
    // are (model.cpp's Arena); the hint is harmless where transparent huge pages are off.
    const std::size_t align = std::size_t{2} << 20;
    buf = static_cast<float*>(std::aligned_alloc(align, (bytes + align - 1) / align * align));
    if (!buf) throw std::runtime_error("cannot allocate " + std::to_string(mib) + " MiB");
    madvise(buf, bytes, MADV_HUGEPAGE);
    // Each thread writes its own slice first, so that pages are really there (and local to it
    // on NUMA machines) before anything is timed.
    fill(0);
    for (unsigned t = 1; t < threads; ++t) {
      workers.emplace_back([this, t] {
        fill(t);
        while (true) {
          sync.arrive_and_wait();
          if (stop) return;
          g_sink = sum(slice(t), per_thread);
          sync.arrive_and_wait();
        }
      });
    }
  }
  ~Readers() {
    stop = true;
    sync.arrive_and_wait();  // the workers' next start phase: they see stop and return
    for (auto& w : workers) w.join();
    std::free(buf);
  }
  float* slice(unsigned t) const { return buf + t * per_thread; }
  void fill(unsigned t) const {
    float* p = slice(t);
    for (std::size_t i = 0; i < per_thread; ++i) p[i] = 1.0f / static_cast<float>(1 + (i & 1023));
  }
};

ReadProbe::ReadProbe(unsigned threads, std::size_t mib)
    : readers_(std::make_unique<Readers>(std::max(1u, threads), mib)) {}

ReadProbe::~ReadProbe() = default;

ReadBandwidth ReadProbe::read() {
  Readers& r = *readers_;
  r.sync.arrive_and_wait();  // the caller is reader 0
  const auto t0 = std::chrono::steady_clock::now();
  g_sink = r.sum(r.slice(0), r.per_thread);
  r.sync.arrive_and_wait();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return ReadBandwidth{static_cast<double>(r.bytes) / s / 1e9, s, r.bytes, r.isa};
}

ReadBandwidth measure_read_bandwidth(unsigned threads, std::size_t mib, int reps) {
  ReadProbe probe(threads, mib);
  ReadBandwidth best;
  for (int r = 0; r < std::max(1, reps); ++r) {
    const ReadBandwidth pass = probe.read();
    if (r == 0 || pass.gbps > best.gbps) best = pass;
  }
  return best;
}

}  // namespace troupe::bench
