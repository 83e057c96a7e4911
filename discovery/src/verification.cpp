#include "troupe/discovery/verification.hpp"

namespace troupe::discovery {

namespace {
// Distinct senders counted in one window; past it every further one is refused for the window,
// so that senders named in a flood of frames cannot grow the count itself.
constexpr std::size_t kMaxSendersCounted = 1024;
}  // namespace

bool Verification::may_introduce(const std::string& sender, TimePoint now) {
  if (now - window_start_ >= config_.window) {
    introduced_.clear();
    window_start_ = now;
  }
  auto it = introduced_.find(sender);
  if (it == introduced_.end()) {
    if (introduced_.size() >= kMaxSendersCounted) return false;
    it = introduced_.emplace(sender, 0).first;
  }
  if (it->second >= config_.per_sender) return false;
  it->second++;
  return true;
}

std::optional<std::string> Verification::evictable(TimePoint now) const {
  std::optional<std::string> oldest;
  TimePoint oldest_sent{};
  for (const auto& [address, p] : pending_) {
    if (!p.sent || now - *p.sent < config_.timeout) continue;
    if (!oldest || *p.sent < oldest_sent) {
      oldest = address;
      oldest_sent = *p.sent;
    }
  }
  return oldest;
}

Verification::Due Verification::tick(TimePoint now, const std::function<uint64_t()>& next_probe) {
  Due due;
  for (auto& [address, p] : pending_) {
    const bool waiting = p.sent && now - *p.sent < config_.timeout;
    if (waiting) continue;
    if (p.tries >= config_.tries) {
      due.failed.push_back(address);
      continue;
    }
    if (due.pings.size() >= config_.pings_per_tick) continue;
    p.earlier_probe = p.probe;
    p.probe = next_probe();
    p.sent = now;
    p.tries++;
    due.pings.emplace_back(address, p.probe);
  }
  for (const auto& address : due.failed) pending_.erase(address);
  return due;
}

bool Verification::answered(const std::string& address, uint64_t probe) {
  auto it = pending_.find(address);
  if (it == pending_.end() || !it->second.sent) return false;
  if (probe != it->second.probe && (it->second.tries < 2 || probe != it->second.earlier_probe)) return false;
  pending_.erase(it);
  return true;
}

}  // namespace troupe::discovery
