// Frames a node drops (undecodable, from a sender that has no say over the session, for a session
// it does not hold, of a kind it does not take), told sparingly: a sender gets at most one log
// line a second, saying how many of its frames were dropped since its last one. A flood of bad
// frames (38,000 in 6 s from one probe) is then a line a second per sender, not a line a frame.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace troupe {

class DropLog {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  static constexpr std::chrono::seconds kInterval{1};
  // Senders remembered at once; past that, those not told of for kInterval are forgotten (their
  // untold drops stay in total() only), and while all are recent, new senders share one entry
  // (a flood from ever new client routes).
  static constexpr std::size_t kSendersKept = 1024;

  // A frame from `from` (Origin::describe()) dropped for `why` at `now`: the line to log, when
  // one is due. Thread-safe.
  std::optional<std::string> dropped(const std::string& from, const std::string& why, time_point now);
  uint64_t total() const;

 private:
  struct Sender {
    time_point told{};
    uint64_t untold = 0;  // dropped since the last line
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Sender> senders_;
  uint64_t total_ = 0;
};

}  // namespace troupe
