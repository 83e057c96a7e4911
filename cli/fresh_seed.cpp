// Sampling seeds for requests that name none.
#include <sys/random.h>

#include <chrono>

#include "commands.hpp"

namespace troupe::cli {

uint64_t fresh_seed() {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) == sizeof seed) return seed;
  // getrandom blocks until the pool is ready and fails only on kernels before 3.17: the clock's
  // nanoseconds then, which still differ between requests.
  return uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
}

}  // namespace troupe::cli
