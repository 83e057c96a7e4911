// --speak and --speak-to: sentences cut as the text streams, and WAV files rendered by `troupe
// run` whose length follows the text.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "speech.hpp"
#include "support/process.hpp"

using troupe::cli::Sentences;
using troupe::test::run_troupe;
using troupe::test::shared_dir;

TEST_CASE("sentences are spoken when they end, not before", "[speech]") {
  Sentences s;
  CHECK(s.add("Once upon a time.") == "");  // the next piece may be "5 apples"
  CHECK(s.add(" There was") == "Once upon a time. ");
  CHECK(s.add(" a dog! It ran.\nThe") == "There was a dog! It ran.\n");
  CHECK(s.add(" end is 3.5 km") == "");
  CHECK(s.rest() == "The end is 3.5 km");
  CHECK(s.rest() == "");
}

namespace {

struct Wav {
  bool riff = false;
  uint16_t format = 0, channels = 0, bits = 0;
  uint32_t rate = 0, data_bytes = 0;
  std::size_t file_bytes = 0;
};

Wav read_wav(const std::string& path) {
  const std::string b = troupe::test::read_all(path);
  Wav w;
  w.file_bytes = b.size();
  if (b.size() < 44) return w;
  auto u16 = [&](std::size_t at) { return uint16_t(uint8_t(b[at]) | uint8_t(b[at + 1]) << 8); };
  auto u32 = [&](std::size_t at) { return uint32_t(u16(at) | uint32_t(u16(at + 2)) << 16); };
  w.riff = b.compare(0, 4, "RIFF") == 0 && b.compare(8, 8, "WAVEfmt ") == 0 && b.compare(36, 4, "data") == 0;
  w.format = u16(20);
  w.channels = u16(22);
  w.rate = u32(24);
  w.bits = u16(34);
  w.data_bytes = u32(40);
  return w;
}

}  // namespace

TEST_CASE("speaking to a file renders the answer as a WAV file whose length follows the text", "[speech]") {
#ifndef TROUPE_HAVE_ESPEAK
  std::printf("TROUPE-SKIP: this build has no espeak-ng (libespeak-ng-dev missing at configure time)\n");
  return;
#else
  const troupe::test::TempDir dir;
  const std::string model = shared_dir() + "/models/stories260K/stories260K.bin";
  auto render = [&](int steps, const std::string& wav) {
    const auto r = run_troupe({"run", model, "-t", "0", "-n", std::to_string(steps), "-i", "Once upon a time",
                               "--speak-to", wav});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    // The text on stdout is what it is without the flag.
    CHECK(r.out == run_troupe({"run", model, "-t", "0", "-n", std::to_string(steps), "-i", "Once upon a time"}).out);
    return read_wav(wav);
  };
  const Wav short_one = render(20, dir / "short.wav");
  const Wav long_one = render(120, dir / "long.wav");
  for (const Wav& w : {short_one, long_one}) {
    CHECK(w.riff);
    CHECK(w.format == 1);
    CHECK(w.channels == 1);
    CHECK(w.bits == 16);
    CHECK(w.rate > 8000);
    CHECK(w.data_bytes + 44 == w.file_bytes);
  }
  CHECK(short_one.data_bytes > short_one.rate);  // over half a second of speech
  CHECK(long_one.data_bytes > 3 * short_one.data_bytes);
#endif
}

TEST_CASE("speaking to a file that cannot be written is bad input", "[speech][errors]") {
  const std::string model = shared_dir() + "/models/stories260K/stories260K.bin";
  const auto r = run_troupe({"run", model, "-n", "10", "--speak-to", "/nonexistent/dir/a.wav"});
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
#ifdef TROUPE_HAVE_ESPEAK
  CHECK(r.err == "troupe: --speak-to /nonexistent/dir/a.wav: cannot write this file\n");
#else
  CHECK(r.err.find("espeak-ng") != std::string::npos);
#endif
}
