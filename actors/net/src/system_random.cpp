#include "troupe/net/system_random.hpp"

#include <sodium.h>

#include "troupe/model/error.hpp"

namespace troupe::net {

SystemRandom::SystemRandom() {
  if (sodium_init() < 0) throw RuntimeFailure("libsodium cannot initialise (no random source?)");
}

uint64_t SystemRandom::next() {
  uint64_t value = 0;
  randombytes_buf(&value, sizeof value);
  return value;
}

}  // namespace troupe::net
