// Members heard of only through gossip, until they answer a ping of this node's own.
//
// Gossip is written by its sender, and a member holding the mesh secret may invent members (and
// have them claim any throughput, to be given every layer). So a member introduced by others is
// a candidate: this node pings it with an unguessable probe number, and only the process at its
// address, answering with that number, makes it a member that is planned, routed through and
// spoken for in this node's gossip (docs/mesh.md, "Verification"). The candidates are bounded
// against a flood of invented ones: at most `max_pending` at a time, at most `per_sender` new
// ones from one sender per `window`, and a candidate pinged in vain gives its place to a
// newcomer, so that a real node still joins while invented ones keep coming.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "troupe/protocol/transport.hpp"

namespace troupe::discovery {

using TimePoint = Clock::time_point;
using Millis = std::chrono::milliseconds;

struct VerificationConfig {
  std::size_t max_pending = 64;    // candidates at a time
  std::size_t pings_per_tick = 8;  // so that a node hearing of a thousand members at once (a
                                   // simulated mesh) does not ping them all in one go
  Millis timeout{400};             // a ping unanswered this long is sent again, or has failed
  int tries = 4;                   // pings before a candidate is forgotten (20% loss each way
                                   // loses a round trip in 36% of tries: 4 all fail in 1.7%)
  std::size_t per_sender = 32;     // new members one sender may introduce per window
  Millis window{1000};
};

class Verification {
 public:
  explicit Verification(VerificationConfig config) : config_(config) {}

  // Whether `sender` may introduce one more new member now; counts it when it may.
  bool may_introduce(const std::string& sender, TimePoint now);
  bool full() const { return pending_.size() >= config_.max_pending; }
  bool pending(const std::string& address) const { return pending_.count(address) > 0; }
  std::size_t size() const { return pending_.size(); }
  void add(const std::string& address) { pending_.emplace(address, Pending{}); }
  void remove(const std::string& address) { pending_.erase(address); }
  // The candidate pinged in vain the longest (its last ping past the timeout), if any: the one
  // to forget when a newcomer needs its place.
  std::optional<std::string> evictable(TimePoint now) const;

  struct Due {
    std::vector<std::pair<std::string, uint64_t>> pings;  // (address, probe number): ping now
    std::vector<std::string> failed;                      // every try in vain: forget them
  };
  // The pings due now (at most pings_per_tick), each numbered by `next_probe`.
  Due tick(TimePoint now, const std::function<uint64_t()>& next_probe);
  // Whether an ack from `address` numbered `probe` answers its ping; it is no longer a
  // candidate then.
  bool answered(const std::string& address, uint64_t probe);

 private:
  struct Pending {
    uint64_t probe = 0, earlier_probe = 0;  // the last ping's number, and the one before (an
                                            // answer may come after the next try has left)
    std::optional<TimePoint> sent;          // none: not pinged yet
    int tries = 0;
  };
  VerificationConfig config_;
  std::map<std::string, Pending> pending_;  // by address: pinged in a stable order
  std::unordered_map<std::string, std::size_t> introduced_;  // this window's, by sender
  TimePoint window_start_{};
};

}  // namespace troupe::discovery
