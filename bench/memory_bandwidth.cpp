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

ReadBandwidth measure_read_bandwidth(unsigned threads, std::size_t mib, int reps) {
  threads = std::max(1u, threads);
  reps = std::max(1, reps);
  const char* isa = nullptr;
  const SumFn sum = pick_kernel(&isa);

  // Give each thread an equal slice, a multiple of 64 floats (one 4-accumulator AVX-512 step).
  const size_t total = mib << 20;
  const size_t per_thread = total / sizeof(float) / threads / 64 * 64;
  const size_t floats = per_thread * threads;
  const size_t bytes = floats * sizeof(float);
  if (per_thread == 0) throw std::runtime_error("a buffer of " + std::to_string(mib) + " MiB is too small for " + std::to_string(threads) + " threads");

  // 2 MiB alignment lets the kernel back the buffer with huge pages (fewer TLB misses, as with a
  // large mmap'd model); the hint is harmless where transparent huge pages are off.
  const size_t align = size_t{2} << 20;
  float* buf = static_cast<float*>(std::aligned_alloc(align, (bytes + align - 1) / align * align));
  if (!buf) throw std::runtime_error("cannot allocate " + std::to_string(mib) + " MiB");
  madvise(buf, bytes, MADV_HUGEPAGE);

  // Threads live for the whole run; two barrier phases per repetition: start and finish. Each
  // thread first writes its own slice so pages are really there (and local to it on NUMA boxes)
  // before anything is timed.
  std::barrier sync(static_cast<std::ptrdiff_t>(threads));
  auto work = [&](unsigned t) {
    float* p = buf + t * per_thread;
    for (size_t i = 0; i < per_thread; ++i) p[i] = 1.0f / static_cast<float>(1 + (i & 1023));
    for (int r = 0; r < reps; ++r) {
      sync.arrive_and_wait();  // start together
      float s = sum(p, per_thread);
      g_sink = s;
      sync.arrive_and_wait();  // the main thread stops the clock once everyone is here
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work, t);

  // The main thread is reader 0 too; it times each repetition between the two barriers.
  double best = 1e30;
  {
    float* p = buf;
    for (size_t i = 0; i < per_thread; ++i) p[i] = 1.0f / static_cast<float>(1 + (i & 1023));
    for (int r = 0; r < reps; ++r) {
      sync.arrive_and_wait();
      auto t0 = std::chrono::steady_clock::now();
      g_sink = sum(p, per_thread);
      sync.arrive_and_wait();
      auto t1 = std::chrono::steady_clock::now();
      best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    }
  }
  for (auto& th : pool) th.join();
  std::free(buf);

  ReadBandwidth r;
  r.gbps = static_cast<double>(bytes) / best / 1e9;
  r.best_s = best;
  r.bytes = bytes;
  r.isa = isa;
  return r;
}

}  // namespace troupe::bench
