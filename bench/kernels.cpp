// troupe-kernels: the kernels of the weight types with an interleaved layout (Q8_0, Q4_0) on
// their own, for the figures in docs/performance.md.
//
//   troupe-kernels [--n 2048] [--dram-mib 600] [--threads N] [--tokens 64] [--reps 5]
//
// For each such type: the matvec (one token) over a matrix that stays in L2 and over one far larger
// than the caches, in GB/s of weights; and a batch of --tokens tokens over L2-sized tiles, in
// G multiply-adds a second, both in ggml's layout and, where the CPU has kernels for it, copied
// into the interleaved layout first as the engine does (kernels.hpp). Rows are split over
// --threads threads as the engine splits them. Random weights; best of --reps.
#include <sys/mman.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "troupe/kernels/kernels.hpp"

namespace k = troupe::kernels;

namespace {

// Weights in huge pages, as the engine places them (model.cpp's Arena).
std::vector<uint8_t*> g_buffers;
uint8_t* huge_buffer(std::size_t bytes) {
  const std::size_t align = std::size_t(2) << 20;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(align, (bytes + align - 1) / align * align));
  if (!p) {
    std::fprintf(stderr, "troupe-kernels: cannot allocate %zu MiB\n", bytes >> 20);
    std::exit(1);
  }
  madvise(p, bytes, MADV_HUGEPAGE);
  g_buffers.push_back(p);
  return p;
}

// Rows [0, rows) over `threads` threads in multiples of 16, each calling part(r0, r1).
void split(int threads, int rows, const std::function<void(int, int)>& part) {
  std::vector<std::thread> pool;
  const int per = (rows / threads + 15) / 16 * 16;
  for (int t = 1; t < threads; t++) {
    const int r0 = std::min(rows, t * per), r1 = std::min(rows, (t + 1) * per);
    pool.emplace_back([&, r0, r1] { part(r0, r1); });
  }
  part(0, std::min(rows, per));
  for (auto& th : pool) th.join();
}

double best_seconds(int reps, const std::function<void()>& f) {
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Rows of random weights: `pattern` rows of random floats in the type's blocks, repeated.
uint8_t* random_rows(k::WeightType type, int rows, int n, std::mt19937& rng) {
  constexpr int kPattern = 64;
  const std::size_t row_bytes = k::type_traits(type).bytes_of(n);
  uint8_t* w = huge_buffer(std::size_t(rows) * row_bytes);
  std::vector<float> row(n);
  for (int r = 0; r < std::min(rows, kPattern); r++) {
    for (float& v : row) v = float(int(rng() % 2001) - 1000) / 1000.0f;
    k::quantize_row(type, w + std::size_t(r) * row_bytes, row.data(), n);
  }
  for (int r = kPattern; r < rows; r++) {
    std::memcpy(w + std::size_t(r) * row_bytes, w + std::size_t(r % kPattern) * row_bytes, row_bytes);
  }
  return w;
}

void run_type(k::WeightType type, int n, std::size_t dram_bytes, int threads, int tokens, int reps,
              std::mt19937& rng) {
  const k::TypeTraits& traits = k::type_traits(type);
  const k::TypeTraits& input = k::type_traits(traits.input);
  const k::TypeKernels& kern = k::isa_kernels()[type];
  const int nb = n / input.block;  // x's blocks a token
  const std::size_t row_bytes = traits.bytes_of(n);
  const int dram_rows = int(dram_bytes / row_bytes) / 16 * 16;
  const uint8_t* w = random_rows(type, dram_rows, n, rng);
  std::vector<float> xf(std::size_t(tokens) * n);
  for (auto& v : xf) v = float(int(rng() % 2001) - 1000) / 1000.0f;
  std::vector<uint8_t> x(std::size_t(tokens) * input.bytes_of(n));
  std::vector<k::XBlockSum> sums(std::size_t(tokens) * nb);  // once per token, as the engine
  for (int t = 0; t < tokens; t++) {
    uint8_t* xt = x.data() + std::size_t(t) * input.bytes_of(n);
    k::quantize_row(traits.input, xt, xf.data() + std::size_t(t) * n, n);
    k::sum_x_blocks(type, sums.data() + std::size_t(t) * nb, xt, nb);
  }
  std::vector<float> y(std::size_t(tokens) * dram_rows);

  // `iters` products of rows [0, rows) over the threads, each thread its share every time.
  auto matvec = [&](int rows, int iters) {
    return best_seconds(reps, [&] {
      split(threads, rows, [&](int r0, int r1) {
        for (int i = 0; i < iters; i++) kern.matvec(y.data(), w, x.data(), n, r0, r1);
      });
    }) / iters;
  };
  // In L2: half a MiB a thread, so the weights stay in each core's own L2.
  const int l2_rows = std::max(16, int(threads * (512 << 10) / row_bytes) / 16 * 16);
  const double in_l2 = double(l2_rows) * row_bytes / matvec(l2_rows, 200) / 1e9;
  const double dram = double(dram_rows) * row_bytes / matvec(dram_rows, 1) / 1e9;

  // The batch over 4096 rows in tiles of the engine's sizes (transformer.cpp).
  const int batch_rows = std::min(dram_rows, 4096);
  auto batch = [&](bool interleave) {
    const int tile = std::max(1, int((interleave ? 256 << 10 : 96 << 10) / row_bytes) / 16) * 16;
    std::vector<std::vector<uint8_t>> scratch(threads);
    const double s = best_seconds(reps, [&] {
      std::vector<std::thread> pool;
      auto part = [&](int index, int r0, int r1) {
        for (int a = r0; a < r1; a += tile) {
          const int b = std::min(r1, a + tile);
          if (!interleave) {
            kern.matmul(y.data(), batch_rows, w, x.data(), nb, n, tokens, a, b);
            continue;
          }
          std::vector<uint8_t>& t = scratch[index];
          t.resize(std::max(t.size(), k::interleaved_bytes(type, b - a, n)));
          k::interleave(type, t.data(), w + std::size_t(a) * row_bytes, b - a, n);
          kern.matmul_interleaved(y.data() + a, batch_rows, t.data(), x.data(), sums.data(), nb, n,
                                  tokens, 0, b - a);
        }
      };
      const int per = (batch_rows / threads + 15) / 16 * 16;
      for (int t = 1; t < threads; t++) {
        pool.emplace_back(part, t, std::min(batch_rows, t * per), std::min(batch_rows, (t + 1) * per));
      }
      part(0, 0, std::min(batch_rows, per));
      for (auto& th : pool) th.join();
    });
    return double(batch_rows) * n * tokens / s / 1e9;
  };
  const double ggml = batch(false);
  std::printf("%s, n %d, %d thread%s: matvec %.1f GB/s in L2, %.1f GB/s from DRAM (%zu MiB); "
              "%d tokens %.0f G multiply-adds/s",
              traits.name, n, threads, threads == 1 ? "" : "s", in_l2, dram,
              std::size_t(dram_rows) * row_bytes >> 20, tokens, ggml);
  if (k::isa_kernels().interleaves_batches) std::printf(", interleaved tiles %.0f", batch(true));
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"troupe-kernels: Q8_0 / Q4_0 matvec and batched kernels, in cache and from DRAM"};
  int n = 2048, threads = 1, tokens = 64, reps = 5;
  std::size_t dram_mib = 600;
  app.add_option("--n", n, "columns (a multiple of 32)")->check(CLI::Range(32, 1 << 16));
  app.add_option("--dram-mib", dram_mib, "size of the matrix read from DRAM")->check(CLI::Range(64, 1 << 16));
  app.add_option("--threads", threads, "threads")->check(CLI::Range(1, 256));
  app.add_option("--tokens", tokens, "tokens of the batch")->check(CLI::Range(1, 64));
  app.add_option("--reps", reps, "repetitions; the best is reported")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  if (n % k::kBlock != 0) {
    std::fprintf(stderr, "troupe-kernels: --n: %d is not a multiple of 32\n", n);
    return 2;
  }
  std::mt19937 rng(1);
  std::printf("isa %s\n", std::string(k::isa_name(k::detected_isa())).c_str());
  for (int i = 0; i < k::kWeightTypes; i++) {
    const auto type = static_cast<k::WeightType>(i);
    if (k::type_traits(type).interleaved) run_type(type, n, dram_mib << 20, threads, tokens, reps, rng);
  }
  for (uint8_t* p : g_buffers) std::free(p);
  return 0;
}
