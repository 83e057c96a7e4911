// The operating system's entropy, for the numbers others must not predict (session ids):
// libsodium's randombytes, which reads the kernel's CSPRNG through getrandom(2). Chosen over
// std::random_device, whose source is the library's choice: libstdc++ 12 on x86 takes the CPU's
// RDSEED/RDRAND when present, unmixed by the kernel, and some AMD CPUs' RDRAND has returned all
// ones (after a resume; with early Zen 2 firmware). getrandom is the kernel's mix of every
// source, blocks only until that is seeded at boot, needs no file descriptor, and libsodium is
// here already for CURVE and the mesh's keys.
#pragma once

#include "troupe/protocol/transport.hpp"

namespace troupe::net {

class SystemRandom final : public RandomSource {
 public:
  SystemRandom();  // RuntimeFailure when libsodium cannot initialise
  uint64_t next() override;
};

}  // namespace troupe::net
