// The codec against its golden record (tests/protocol/golden_frames.txt, written by the codec
// of the commit named at its top): every sample encodes to the same bytes, every probe and every
// one-byte mutation of a sample is accepted or refused as it was, and what is accepted encodes
// back to the same bytes. Also the fuzz corpus, and the frames of older nodes.
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "support/process.hpp"
#include "troupe/model/error.hpp"
#include "troupe/protocol/wire.hpp"
#include "wire_samples.hpp"

using namespace troupe;
using namespace troupe::wire;

namespace {

// "message NAME" or "probe NAME" -> the rest of the line.
std::map<std::string, std::string> golden_lines(std::istream& in) {
  std::map<std::string, std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t kind = line.find(' ');
    const std::size_t name = line.find(' ', kind + 1);
    lines[line.substr(0, name)] = line.substr(name + 1);
  }
  return lines;
}

// Probes of frames that end before fields that a codec older than the field lists refused to
// miss; the lists mark them appended, so they read with the fields' defaults.
const std::set<std::string> kAppendedSinceRecord = {"probe activations_5_fields", "probe sampled_3_fields",
                                                   "probe status_9_fields"};

wire_test::NamedFrame probe(const std::string& name) {
  for (wire_test::NamedFrame& p : wire_test::probe_frames()) {
    if (p.name == name) return std::move(p);
  }
  FAIL("no probe " << name);
  return {};
}

}  // namespace

TEST_CASE("the codec writes and judges frames as the golden record says", "[wire]") {
  std::istringstream file(test::read_all(TROUPE_SOURCE_DIR "/tests/protocol/golden_frames.txt"));
  const auto golden = golden_lines(file);
  std::stringstream now;
  wire_test::write_golden(now);
  const auto current = golden_lines(now);
  REQUIRE(current.size() == golden.size());
  for (const auto& [key, line] : golden) {
    INFO(key);
    REQUIRE(current.count(key) == 1);
    const std::string frame_hash = line.substr(0, line.find(' '));
    if (kAppendedSinceRecord.count(key) && line == frame_hash + " refused") {
      CHECK(current.at(key).rfind(frame_hash + " ok:", 0) == 0);
    } else {
      CHECK(current.at(key) == line);
    }
  }
  // The recorded frames themselves decode and encode back byte for byte.
  for (const auto& [key, line] : golden) {
    const std::string frame = line.substr(0, line.find(' '));
    if (key.rfind("message ", 0) != 0 || frame[0] == '#') continue;
    INFO(key);
    const std::vector<uint8_t> bytes = wire_test::from_hex(frame);
    CHECK(encode(decode(bytes)) == bytes);
  }
}

TEST_CASE("every frame of the fuzz corpus decodes and encodes back byte for byte", "[wire]") {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TROUPE_SOURCE_DIR "/fuzz/corpus/wire")) {
    INFO(entry.path().string());
    const std::string text = test::read_all(entry.path().string());
    const std::vector<uint8_t> bytes(text.begin(), text.end());
    CHECK(encode(decode(bytes)) == bytes);
    files++;
  }
  CHECK(files >= 13);
}

TEST_CASE("frames from older nodes lack the appended fields and read as the defaults", "[wire]") {
  const Activations act = std::get<Activations>(decode(probe("activations_5_fields").frame).body);
  CHECK(act.pos == 17);
  CHECK(act.compute_us == 0);
  const Sampled sampled = std::get<Sampled>(decode(probe("sampled_3_fields").frame).body);
  CHECK(sampled.rng_state == 0x9e3779b97f4a7c15ull);
  CHECK(sampled.compute_us == 0);
  const Status status = std::get<Status>(decode(probe("status_9_fields").frame).body);
  CHECK(status.problem == "layers 2:5 are held by no live node");
  CHECK(status.counters.frames_sent == 0);
  CHECK(status.counters.hop_seconds == 0);
  const Gossip gossip = std::get<Gossip>(decode(probe("gossip_update_3_fields").frame).body);
  CHECK(gossip.updates[1].state == MemberState::suspect);
  CHECK(gossip.updates[1].by.empty());
  const Done done = std::get<Done>(decode(probe("done_6_fields").frame).body);
  CHECK(done.stats.total_ms == 22);
  CHECK(done.finish_reason.empty());
  const GenerateRequest gen = std::get<GenerateRequest>(decode(probe("generate_4_fields").frame).body);
  CHECK(gen.chat);
  CHECK(gen.echo);
  CHECK(gen.stop.empty());
  // Appended fields come as a group: a frame has all of them or none.
  CHECK_THROWS_AS(decode(probe("generate_5_fields").frame), InputError);
  CHECK_THROWS_AS(decode(probe("activations_4_fields").frame), InputError);
}
