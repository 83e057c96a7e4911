#include "troupe/protocol/drop_log.hpp"

#include <iterator>

namespace troupe {

namespace {
constexpr const char* kOthers = "(other senders)";
}

std::optional<std::string> DropLog::dropped(const std::string& from, const std::string& why, time_point now) {
  std::lock_guard lock(mutex_);
  total_++;
  auto it = senders_.find(from);
  if (it == senders_.end() && senders_.size() >= kSendersKept) {
    for (auto s = senders_.begin(); s != senders_.end();) {
      s = now - s->second.told >= kInterval ? senders_.erase(s) : std::next(s);
    }
  }
  if (it == senders_.end()) {
    const std::string& key = senders_.size() < kSendersKept ? from : kOthers;
    it = senders_.try_emplace(key, Sender{now - kInterval, 0}).first;
  }
  Sender& s = it->second;
  s.untold++;
  if (now - s.told < kInterval) return std::nullopt;
  std::string line;
  if (s.untold == 1) {
    line = "dropped a frame from " + it->first + ": " + why;
  } else {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now - s.told).count();
    line = "dropped " + std::to_string(s.untold) + " frames from " + it->first + " in the last " +
           std::to_string(seconds) + " s; the last: " + why;
  }
  s = {now, 0};
  return line;
}

uint64_t DropLog::total() const {
  std::lock_guard lock(mutex_);
  return total_;
}

}  // namespace troupe
