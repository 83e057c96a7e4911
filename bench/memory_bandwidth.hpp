// This machine's memory READ bandwidth, measured the way token generation uses it.
//
// Generating one token streams every weight matrix once through a matrix-vector product: wide
// sequential loads from a buffer far larger than the caches, reduced into a few accumulators, split
// over threads by rows. This does exactly that (minus the multiply), so its GB/s is the ceiling a
// memory-bound decoder can reach: tok/s <= GB/s / (weight bytes read per token). Used by
// `troupe bench` and `troupe-bandwidth`.
#pragma once

#include <cstddef>
#include <string>

namespace troupe::bench {

struct ReadBandwidth {
  double gbps = 0;         // GB = 1e9 bytes, per second, of the best repetition
  double best_s = 0;
  std::size_t bytes = 0;   // read per repetition
  std::string isa;         // the loads used: avx512, avx2 or scalar
};

// `threads` readers over a buffer of about `mib` MiB (keep it far above the last-level cache),
// best of `reps`. Throws std::runtime_error when the buffer cannot be had.
ReadBandwidth measure_read_bandwidth(unsigned threads, std::size_t mib, int reps);

}  // namespace troupe::bench
