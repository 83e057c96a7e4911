// This machine's memory READ bandwidth, measured the way token generation uses it.
//
// Generating one token streams every weight matrix once through a matrix-vector product: wide
// sequential loads from a buffer far larger than the caches, reduced into a few accumulators, split
// over threads by rows. This does exactly that (minus the multiply), so its GB/s is the ceiling a
// memory-bound decoder can reach: tok/s <= GB/s / (weight bytes read per token). Used by
// `troupe bench` and `troupe-bandwidth`.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace troupe::bench {

struct ReadBandwidth {
  double gbps = 0;         // GB = 1e9 bytes, per second
  double seconds = 0;      // of the pass
  std::size_t bytes = 0;   // read by the pass
  std::string isa;         // the loads used: avx512, avx2 or scalar
};

// `threads` readers and a buffer of about `mib` MiB (keep it far above the last-level cache),
// kept for many measurements: `troupe bench` probes between generated tokens, so each probe must
// cost a pass over the buffer and nothing else. The buffer is in huge pages where the kernel
// allows, as the engine's weights are, and written once before the first pass. Throws
// std::runtime_error when the buffer cannot be had.
class ReadProbe {
 public:
  ReadProbe(unsigned threads, std::size_t mib);
  ~ReadProbe();
  ReadProbe(const ReadProbe&) = delete;
  ReadProbe& operator=(const ReadProbe&) = delete;

  // One pass over the buffer, all threads together: GB/s and seconds of that pass.
  ReadBandwidth read();

 private:
  struct Readers;
  std::unique_ptr<Readers> readers_;
};

// The best of `reps` passes of a fresh ReadProbe.
ReadBandwidth measure_read_bandwidth(unsigned threads, std::size_t mib, int reps);

}  // namespace troupe::bench
