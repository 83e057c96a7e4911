// The bytes wire::encode gives a frame, counted without building it. The simulator charges every
// frame's bytes to its link, and in a thousand-node mesh most frames are gossip carrying member
// tables: building each frame (a copy of the body, then the msgpack buffer) only to take its
// size was a sixth of the run. For gossip and plans this repeats runtime/src/wire.cpp's packing
// calls into a byte counter, so msgpack itself picks each field's width; other frames are
// encoded. tests/test_sim.cpp checks it against wire::encode.
#pragma once

#include <cstdint>

#include "troupe/runtime/wire.hpp"

namespace troupe::sim {

uint64_t frame_bytes(const wire::Body& body);

}  // namespace troupe::sim
