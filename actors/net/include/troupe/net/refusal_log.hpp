// How refused connections are logged: each address once for each reason, and again at most once
// a minute (with how many were refused since); past a few lines a minute, the rest only counted
// and summed up once a minute. A flood of bad handshakes is then a few lines, not a log flood.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace troupe::net {

class RefusalLog {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kWindow{60};
  static constexpr int kLinesPerWindow = 10;
  static constexpr std::size_t kAddressesKept = 1024;

  // A refusal from `host` (the peer's address without its port: a flood comes from ever new
  // ports) for `why`; the line to log, if it is one to log now.
  std::optional<std::string> refused(const std::string& host, const std::string& why, Clock::time_point now);
  // The summary of the refusals not logged one by one, once a window has passed since the first
  // of them; nullopt when there is none to give.
  std::optional<std::string> summary(Clock::time_point now);

 private:
  struct Seen {
    Clock::time_point logged;
    uint64_t since = 0;  // refusals not logged since
  };
  std::map<std::string, Seen> seen_;  // by host and reason
  Clock::time_point window_start_{};
  int lines_in_window_ = 0;
  uint64_t unlogged_ = 0;
  std::map<std::string, bool> unlogged_hosts_;
};

}  // namespace troupe::net
