// What this device offers a mesh: its memory, the speed its kernels read weights at, its
// architecture. A node advertises these; the coordinator's planner sizes stages by them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "troupe/model/thread_pool.hpp"

namespace troupe {

// GB/s at which this machine's kernels read f32 weights with `pool`: a matrix of `bytes` (by
// default bigger than most caches), multiplied a few times (~50 ms). The matrix is freed before
// it returns; while it runs, it is the process's peak.
constexpr std::size_t kThroughputProbeBytes = std::size_t(16) << 20;
double measure_throughput(ThreadPool& pool, std::size_t bytes = kThroughputProbeBytes);

// MemAvailable (/proc/meminfo) in bytes; 0 when it cannot be read.
uint64_t available_memory();

// This process's resident memory now and at its peak (VmRSS, VmHWM of /proc/self/status), in
// bytes; zeros when they cannot be read.
std::array<uint64_t, 2> process_memory();

// "x86_64", "aarch64", "riscv64" (or "unknown"): what this binary was built for.
const char* architecture();

}  // namespace troupe
