// SipHash-2-4 (Aumasson and Bernstein, 2012) of one 64-bit word: a keyed pseudo-random function.
// Probe numbers are its outputs over a counter, under a key drawn from the membership's seed:
// a member that sees every probe number this node sends cannot tell the next one, as it could
// from the outputs of a plain generator (or of a counter), and so cannot answer a ping that was
// not sent to it.
#pragma once

#include <cstdint>

namespace troupe::discovery {

inline uint64_t siphash24(uint64_t k0, uint64_t k1, uint64_t word) {
  uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
  auto rotl = [](uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
  auto round = [&] {
    v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);
    v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;
    v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;
    v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);
  };
  auto compress = [&](uint64_t m) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  };
  compress(word);
  compress(uint64_t(8) << 56);  // the last block: the message's length (8 bytes), nothing left
  v2 ^= 0xff;
  for (int i = 0; i < 4; i++) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

}  // namespace troupe::discovery
