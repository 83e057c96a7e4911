// The golden record: what a version of the codec writes for each sample and how it judges each
// probe and each one-byte mutation of a sample's frame.
#include <ostream>
#include <stdexcept>

#include "troupe/model/error.hpp"
#include "wire_samples.hpp"

namespace troupe::wire_test {

namespace {

uint64_t fnv1a(std::span<const uint8_t> bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

std::string hash_text(std::span<const uint8_t> bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (uint64_t h = fnv1a(bytes), i = 0; i < 16; i++, h >>= 4) out += digits[h & 15];
  return out;
}

// One character per (byte, replacement) of the frame's first 256 and last 16 bytes: '.' refused,
// '=' accepted and encoding back to the mutated frame, else a letter from the hash of what the
// accepted message encodes to. Ends with a hash of all the accepted messages' frames, in order.
std::string mutation_verdicts(const std::vector<uint8_t>& frame) {
  std::string out;
  std::vector<uint8_t> accepted;
  for (std::size_t i = 0; i < frame.size(); i++) {
    if (i >= 256 && i + 16 < frame.size()) continue;
    const uint8_t b = frame[i];
    for (uint8_t v : {uint8_t(0x00), uint8_t(0xff), uint8_t(0xc1), uint8_t(b ^ 0x10), uint8_t(b + 1),
                      uint8_t(b - 1)}) {
      std::vector<uint8_t> bad = frame;
      bad[i] = v;
      try {
        const std::vector<uint8_t> again = wire::encode(wire::decode(bad));
        out += again == bad ? '=' : char('a' + fnv1a(again) % 26);
        accepted.insert(accepted.end(), again.begin(), again.end());
      } catch (const InputError&) {
        out += '.';
      }
    }
  }
  return out + ":" + hash_text(accepted);
}

}  // namespace

std::string hex(std::span<const uint8_t> bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::vector<uint8_t> from_hex(const std::string& text) {
  auto nibble = [](char c) -> uint8_t {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw std::invalid_argument("not hex");
  };
  std::vector<uint8_t> out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(nibble(text[i]) << 4 | nibble(text[i + 1])));
  }
  return out;
}

std::string frame_text(std::span<const uint8_t> frame) {
  return frame.size() <= 4096 ? hex(frame) : std::string("#").append(hash_text(frame));
}

std::string verdict(std::span<const uint8_t> frame) {
  try {
    return "ok:" + hash_text(wire::encode(wire::decode(frame)));
  } catch (const InputError&) {
    return "refused";
  }
}

void write_golden(std::ostream& out) {
  for (const NamedMessage& m : rich_samples()) {
    const std::vector<uint8_t> frame = wire::encode(m.message);
    out << "message " << m.name << " " << frame_text(frame) << " " << mutation_verdicts(frame) << "\n";
  }
  for (const NamedFrame& p : probe_frames()) {
    out << "probe " << p.name << " " << hash_text(p.frame) << " " << verdict(p.frame) << "\n";
  }
}

}  // namespace troupe::wire_test
