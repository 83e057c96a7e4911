// The wire codec: every message survives a round trip, and no bytes make decoding crash.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "troupe/model/error.hpp"
#include "troupe/protocol/wire.hpp"
#include "wire_samples.hpp"

using namespace troupe;
using namespace troupe::wire;

using troupe::wire_test::samples;

TEST_CASE("every message survives encoding and decoding", "[wire]") {
  for (const Message& m : samples()) {
    const std::vector<uint8_t> frame = encode(m);
    const Message back = decode(frame);
    INFO(type_name(m.type()));
    CHECK(back.type() == m.type());
    CHECK(back.session == m.session);
    CHECK(back.seq == m.seq);
    CHECK(encode(back) == frame);  // every field came back
  }
  const Message start = decode(encode(samples()[0]));
  const auto& s = std::get<SessionStart>(start.body);
  CHECK(s.tokens == std::vector<int>{1, 400, 511, 0});
  CHECK(s.sampling.seed == 1234567890123ull);
  CHECK(s.sampling.temperature == 0.8f);
  CHECK(s.route[1].layers == LayerRange{2, 5});
  const Message act = decode(encode(samples()[2]));
  const auto& a = std::get<Activations>(act.body);
  float x[6];
  a.unpack(x, 3);
  CHECK(x[0] == 1.5f);
  CHECK(x[2] == 3e-8f);
  CHECK(x[3] == 1e30f);
  CHECK(std::signbit(x[4]));
  CHECK_THROWS_AS(a.unpack(x, 2), InputError);  // rows of another width
}

TEST_CASE("generate and done frames keep their appended fields, and older frames still read", "[wire]") {
  const GenerateRequest gen = std::get<GenerateRequest>(decode(encode(samples()[6])).body);
  CHECK(gen.max_tokens == 40);
  CHECK_FALSE(gen.echo);
  CHECK(gen.stop == std::vector<std::string>{"\n\n", "The end"});
  REQUIRE(gen.messages.size() == 2);
  CHECK(gen.messages[1] == troupe::ChatMessage{"user", "Hi \xe2\x9c\x93"});
  CHECK(gen.chat_template == "llama3");
  CHECK(std::get<Done>(decode(encode(samples()[8])).body).finish_reason == "length");

  // A first-version generate frame has 4 fields: with the appended ones at their defaults
  // (0, true, [], [], ""), the new frame ends in exactly those 5 bytes after a 9-field header.
  GenerateRequest old;
  old.prompt = "hi";
  std::vector<uint8_t> frame = encode({0, 1, old});
  const std::vector<uint8_t> tail = {0x00, 0xc3, 0x90, 0x90, 0xa0};
  REQUIRE(std::equal(tail.begin(), tail.end(), frame.end() - 5));
  frame.resize(frame.size() - 5);
  const std::vector<uint8_t> head = {0x99, 0xa2, 'h', 'i'};
  auto at = std::search(frame.begin(), frame.end(), head.begin(), head.end());
  REQUIRE(at != frame.end());
  *at = 0x94;
  const GenerateRequest back = std::get<GenerateRequest>(decode(frame).body);
  CHECK(back.prompt == "hi");
  CHECK(back.echo);
  CHECK(back.max_tokens == 0);
  CHECK(back.messages.empty());
}

TEST_CASE("activations are compact binary: f32 exactly, f16 at half the size", "[wire]") {
  std::vector<float> x(288 * 3);
  for (std::size_t i = 0; i < x.size(); i++) x[i] = std::sin(float(i)) * 3;
  const auto f32 = encode({1, 1, Activations::pack(x.data(), 3, 288, ActivationEncoding::f32)});
  const auto f16 = encode({1, 1, Activations::pack(x.data(), 3, 288, ActivationEncoding::f16)});
  CHECK(f32.size() < x.size() * 4 + 40);
  CHECK(f16.size() < x.size() * 2 + 40);
  std::vector<float> y(x.size());
  std::get<Activations>(decode(f16).body).unpack(y.data(), 288);
  for (std::size_t i = 0; i < x.size(); i++) CHECK(std::fabs(x[i] - y[i]) <= std::fabs(x[i]) / 1024 + 1e-7f);
}

TEST_CASE("malformed frames throw InputError and never crash", "[wire]") {
  for (const Message& m : samples()) {
    const std::vector<uint8_t> frame = encode(m);
    // Every truncation, and every single-byte change, is either an error or a valid frame.
    for (std::size_t n = 0; n < frame.size(); n++) {
      CHECK_THROWS_AS(decode({frame.data(), n}), InputError);
    }
    for (std::size_t i = 0; i < std::min<std::size_t>(frame.size(), 200); i++) {
      for (uint8_t v : {uint8_t(0x00), uint8_t(0xff), uint8_t(0xc1), uint8_t(frame[i] ^ 0x10)}) {
        std::vector<uint8_t> bad = frame;
        bad[i] = v;
        try {
          decode(bad);
        } catch (const InputError&) {
        }
      }
    }
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; i++) {
    std::vector<uint8_t> noise(rng() % 64);
    for (auto& b : noise) b = static_cast<uint8_t>(rng());
    try {
      decode(noise);
    } catch (const InputError&) {
    }
  }
}

TEST_CASE("frames of another version or over the limits are refused", "[wire]") {
  std::vector<uint8_t> frame = encode({0, 1, StatusRequest{}});
  frame[6] = 1;
  CHECK_THROWS_WITH(decode(frame), Catch::Contains("protocol version 1"));
  frame[6] = kProtocolVersion;
  frame[2] ^= 1;
  CHECK_THROWS_WITH(decode(frame), Catch::Contains("magic"));
  // Bytes after the frame.
  std::vector<uint8_t> longer = encode({0, 1, StatusRequest{}});
  longer.push_back(0);
  CHECK_THROWS_AS(decode(longer), InputError);
  // A gossip that claims 2^32 member updates allocates nothing.
  std::vector<uint8_t> gossip = {0x96, 0xce, 0x54, 0x52, 0x55, 0x50, 0x02, 0x08, 0x00, 0x00,
                                 0x97, 0x00, 0x00, 0xa1, 'a', 0xa0, 0x00, 0xa0,
                                 0xdd, 0xff, 0xff, 0xff, 0xff};
  CHECK_THROWS_AS(decode(gossip), InputError);
  Text big;
  big.text.assign(kMaxTextBytes + 1, 'x');
  CHECK_THROWS_AS(encode({0, 1, big}), InputError);
  CHECK_THROWS_AS(decode(std::vector<uint8_t>(kMaxFrameBytes + 1, 0x90)), InputError);
  // Values out of range.
  CHECK_THROWS_AS(decode(encode({0, 1, Step{-1, 3}})), InputError);
  GenerateRequest nan_temp;
  nan_temp.sampling.temperature = NAN;
  CHECK_THROWS_AS(decode(encode({0, 1, nan_temp})), InputError);
}
