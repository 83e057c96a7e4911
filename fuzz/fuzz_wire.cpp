// Any bytes as a wire frame (what a node's socket hands it): either InputError, or a message that
// encodes again and decodes to the same frame.
#include <cstdint>
#include <vector>

#include "troupe/model/error.hpp"
#include "troupe/protocol/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const troupe::wire::Message m = troupe::wire::decode({data, size});
    const std::vector<uint8_t> again = troupe::wire::encode(m);
    const troupe::wire::Message back = troupe::wire::decode(again);
    if (troupe::wire::encode(back) != again) __builtin_trap();
    if (const auto* a = std::get_if<troupe::wire::Activations>(&m.body)) {
      // Unpacking checks the size against the row width it is given.
      std::vector<float> x(std::size_t(a->count) * 8);
      try {
        a->unpack(x.data(), 8);
      } catch (const troupe::InputError&) {
      }
    }
  } catch (const troupe::InputError&) {
  }
  return 0;
}
