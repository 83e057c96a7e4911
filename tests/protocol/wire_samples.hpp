// Messages and frames that exercise the wire codec, shared by the protocol tests and by the
// program that records what a given version of the codec makes of them (make_golden_frames.cpp).
// Everything here goes through the public API only (wire::encode, wire::decode and the structs),
// so it compiles against any version of the codec with that API.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <span>
#include <string>
#include <vector>

#include "troupe/protocol/wire.hpp"

namespace troupe::wire_test {

// One message of each type, every field set (tests/protocol/test_wire.cpp's round trips).
std::vector<wire::Message> samples();

struct NamedMessage {
  std::string name;
  wire::Message message;
};
// samples() and variants of them: boundary integers, empty and long strings, nil optionals,
// integral and non-finite floats where they are not checked, every enumeration value.
std::vector<NamedMessage> rich_samples();

struct NamedFrame {
  std::string name;
  std::vector<uint8_t> frame;
};
// Frames aimed at each check: fields missing, appended, of the wrong kind, over a limit or at
// it, out of range or at the edge of the range; some are accepted, most are refused.
std::vector<NamedFrame> probe_frames();

std::string hex(std::span<const uint8_t> bytes);
std::vector<uint8_t> from_hex(const std::string& text);

// What this build's codec makes of every rich sample and probe, one line each (the golden
// file's format, described at its top):
//   message NAME FRAME MUTATIONS  the sample's frame and the verdicts on its one-byte mutations
//   probe NAME FRAMEHASH VERDICT  the probe's verdict
void write_golden(std::ostream& out);

// A frame as the golden file writes it: its bytes in hex, or "#" and its hash when over 4 KiB.
std::string frame_text(std::span<const uint8_t> frame);

// "refused", or "ok:" and the FNV-1a hash of the frame the decoded message encodes to.
std::string verdict(std::span<const uint8_t> frame);

}  // namespace troupe::wire_test
