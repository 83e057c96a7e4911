#include "troupe/model/device.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "troupe/kernels/kernels.hpp"

namespace troupe {

double measure_throughput(ThreadPool& pool, std::size_t bytes) {
  const int cols = 2048;
  const int rows = std::max(16, static_cast<int>(bytes / (sizeof(float) * cols)));
  std::vector<float> w(std::size_t(rows) * cols, 0.001f), x(cols, 1.0f), y(rows);
  const kernels::Matvec f32 = kernels::isa_kernels()[kernels::WeightType::f32].matvec;
  auto once = [&] {
    pool.run(pool.size(), [&](int chunk, int) {
      const Range r = split_range(rows, pool.size(), chunk);
      f32(y.data(), w.data(), x.data(), cols, r.begin, r.end);
    });
  };
  once();
  const auto t0 = std::chrono::steady_clock::now();
  int runs = 0;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(40) || runs < 3) {
    once();
    runs++;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return double(runs) * double(w.size()) * 4 / s / 1e9;
}

uint64_t available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

std::array<uint64_t, 2> process_memory() {
  std::ifstream status("/proc/self/status");
  std::array<uint64_t, 2> out{0, 0};
  std::string line;
  while (std::getline(status, line)) {
    const std::size_t at = line.find_first_of("0123456789");
    if (at == std::string::npos) continue;
    if (line.rfind("VmRSS:", 0) == 0) out[0] = std::stoull(line.substr(at)) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) out[1] = std::stoull(line.substr(at)) * 1024;
  }
  return out;
}

const char* architecture() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#elif defined(__riscv)
  return "riscv64";
#else
  return "unknown";
#endif
}

}  // namespace troupe
