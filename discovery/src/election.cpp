#include "troupe/discovery/election.hpp"

#include <algorithm>

namespace troupe::discovery {

bool supersedes(const Leadership& a, const Leadership& b) {
  return a.term != b.term ? a.term > b.term : a.coordinator > b.coordinator;
}

Election::Election(std::string self, ElectionConfig config, TimePoint started, const SimHook& hook)
    : self_(std::move(self)), config_(config), hook_(&hook), started_(started) {}

bool Election::observe(const Leadership& heard) {
  const bool later = supersedes(heard, current_) || (hook_->broken(BrokenVariant::accept_any_term) && !(heard == current_));
  if (heard.coordinator.empty() || !later) return false;
  current_ = heard;
  vacant_since_.reset();
  return true;
}

bool Election::tick(TimePoint now, const std::vector<std::string>& live) {
  const bool present = !current_.coordinator.empty() &&
                       std::binary_search(live.begin(), live.end(), current_.coordinator);
  if (present) {
    vacant_since_.reset();
    return false;
  }
  if (!vacant_since_) vacant_since_ = now;
  const auto rank = std::lower_bound(live.begin(), live.end(), self_) - live.begin();
  const TimePoint turn = std::max(started_ + config_.settle, *vacant_since_) + rank * config_.backoff;
  if (now < turn) return false;
  current_ = {current_.term + 1, self_};
  vacant_since_.reset();
  return true;
}

}  // namespace troupe::discovery
