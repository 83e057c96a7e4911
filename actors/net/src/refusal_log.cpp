#include "troupe/net/refusal_log.hpp"

namespace troupe::net {

std::optional<std::string> RefusalLog::refused(const std::string& host, const std::string& why,
                                               Clock::time_point now) {
  if (now - window_start_ >= kWindow) {
    window_start_ = now;
    lines_in_window_ = 0;
  }
  const std::string key = host + "\n" + why;  // each reason from a host is told once
  auto it = seen_.find(key);
  const bool due = it == seen_.end() || now - it->second.logged >= kWindow;
  if (!due) {
    it->second.since++;  // told with the next line about this host
    return std::nullopt;
  }
  if (lines_in_window_ >= kLinesPerWindow) {
    unlogged_++;  // told in the summary
    if (unlogged_hosts_.size() < kAddressesKept) unlogged_hosts_[host] = true;
    return std::nullopt;
  }
  lines_in_window_++;
  std::string line = "refused a connection from " + host + ": " + why;
  if (it != seen_.end() && it->second.since > 0) {
    line += " (and " + std::to_string(it->second.since) + " more from there since the last such line)";
  }
  if (it == seen_.end()) {
    if (seen_.size() >= kAddressesKept) seen_.clear();  // a flood of addresses: start over
    it = seen_.emplace(key, Seen{}).first;
  }
  it->second = {now, 0};
  return line;
}

std::optional<std::string> RefusalLog::summary(Clock::time_point now) {
  if (unlogged_ == 0 || now - window_start_ < kWindow) return std::nullopt;
  std::string line = "refused " + std::to_string(unlogged_) + " more connections from " +
                     std::to_string(unlogged_hosts_.size()) +
                     (unlogged_hosts_.size() >= kAddressesKept ? " or more" : "") +
                     " addresses in the last minute, not logged one by one";
  unlogged_ = 0;
  unlogged_hosts_.clear();
  return line;
}

}  // namespace troupe::net
