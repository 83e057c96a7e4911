#include "troupe/discovery/election.hpp"

#include <algorithm>

#include "troupe/discovery/bounds.hpp"

namespace troupe::discovery {

bool supersedes(const Leadership& a, const Leadership& b) {
  return a.term != b.term ? a.term > b.term : a.coordinator > b.coordinator;
}

Election::Election(std::string self, ElectionConfig config, TimePoint started, const SimHook& hook)
    : self_(std::move(self)), config_(config), hook_(&hook), started_(started) {}

bool Election::observe(const Leadership& heard) {
  const bool later = supersedes(heard, current_) || (hook_->broken(BrokenVariant::accept_any_term) && !(heard == current_));
  if (heard.coordinator.empty() || !later) return false;
  if (heard.coordinator == self_) {
    // A ballot naming this node that this process never claimed (it follows no other ballot of
    // its own): an earlier life's, heard after a restart, or a forged one. Coordinating it would
    // make two processes coordinators of one ballot, and nobody else claims while this node is
    // alive: it claims the next term at once.
    if (heard.term + 1 >= kCounterCap) return false;
    current_ = {heard.term + 1, self_};
    vacant_since_.reset();
    return true;
  }
  current_ = heard;
  vacant_since_.reset();
  return true;
}

bool Election::tick(TimePoint now, const std::vector<std::string>& live, bool wait) {
  const bool present = wait || (!current_.coordinator.empty() &&
                                std::binary_search(live.begin(), live.end(), current_.coordinator));
  if (present) {
    vacant_since_.reset();
    return false;
  }
  if (!vacant_since_) vacant_since_ = now;
  const auto rank = std::lower_bound(live.begin(), live.end(), self_) - live.begin();
  const TimePoint turn = std::max(started_ + config_.settle, *vacant_since_) + rank * config_.backoff;
  if (now < turn || current_.term + 1 >= kCounterCap) return false;
  current_ = {current_.term + 1, self_};
  vacant_since_.reset();
  return true;
}

}  // namespace troupe::discovery
