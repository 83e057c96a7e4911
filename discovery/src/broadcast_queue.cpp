#include "troupe/discovery/broadcast_queue.hpp"

#include <algorithm>
#include <iterator>

namespace troupe::discovery {

void BroadcastQueue::push(const wire::MemberUpdate& update) {
  if (by_transmits_.empty()) by_transmits_.resize(1);
  auto [at, fresh] = by_address_.try_emplace(update.info.address);
  if (!fresh) by_transmits_[at->second->transmits].erase(at->second);
  Entries& unsent = by_transmits_[0];
  at->second = unsent.insert(unsent.end(), Entry{update, 0});
}

void BroadcastQueue::take(std::size_t max, int limit, std::vector<wire::MemberUpdate>* out) {
  // How many each count gives: all of counts 0 .. last - 1, `from_last` of count `last`.
  std::size_t taken = 0, last = 0, from_last = 0;
  for (std::size_t t = 0; t < by_transmits_.size() && taken < max; t++) {
    last = t;
    from_last = 0;
    for (const Entry& e : by_transmits_[t]) {
      if (taken == max) break;
      if (out) out->push_back(e.update);
      taken++;
      from_last++;
    }
  }
  if (taken > 0) {
    if (by_transmits_.size() < last + 2) by_transmits_.resize(last + 2);
    // From the highest count down, so that each moved group lands ahead of the group that was
    // at its new count and was not taken.
    for (std::size_t t = last + 1; t-- > 0;) {
      Entries& from = by_transmits_[t];
      const auto end = t == last ? std::next(from.begin(), std::ptrdiff_t(from_last)) : from.end();
      for (auto it = from.begin(); it != end; ++it) it->transmits = t + 1;
      Entries& to = by_transmits_[t + 1];
      to.splice(to.begin(), from, from.begin(), end);
    }
  }
  for (std::size_t t = std::size_t(std::max(limit, 0)); t < by_transmits_.size(); t++) {
    for (const Entry& e : by_transmits_[t]) by_address_.erase(e.update.info.address);
    by_transmits_[t].clear();
  }
  while (by_transmits_.size() > 1 && by_transmits_.back().empty()) by_transmits_.pop_back();
}

}  // namespace troupe::discovery
