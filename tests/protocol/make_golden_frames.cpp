// Writes the golden record of the codec it is linked with to stdout and, given a folder, each
// sample's frame of at most 8 KiB (the fuzzer's -max_len) into it as sample_NAME
// (tests/protocol/make-golden-frames.sh builds it against a commit's wire.cpp).
#include <fstream>
#include <iostream>

#include "wire_samples.hpp"

int main(int argc, char** argv) {
  using namespace troupe;
  wire_test::write_golden(std::cout);
  if (argc < 2) return 0;
  for (const wire_test::NamedMessage& m : wire_test::rich_samples()) {
    const std::vector<uint8_t> frame = wire::encode(m.message);
    if (frame.size() > 8192) continue;
    std::ofstream out(std::string(argv[1]) + "/sample_" + m.name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(frame.data()), std::streamsize(frame.size()));
    if (!out) {
      std::cerr << "make_golden_frames: cannot write into " << argv[1] << "\n";
      return 1;
    }
  }
  return 0;
}
