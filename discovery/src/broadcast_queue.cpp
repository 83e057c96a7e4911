#include "troupe/discovery/broadcast_queue.hpp"

#include <algorithm>

namespace troupe::discovery {

namespace {

// Entries lie all over memory, a few cache lines each: fetch them a few ahead of the copying.
template <typename Entry>
void prefetch(const Entry& e) {
  for (std::size_t line = 0; line < sizeof(Entry); line += 64) {
    __builtin_prefetch(reinterpret_cast<const char*>(&e) + line);
  }
}

}  // namespace

void BroadcastQueue::push(const wire::MemberUpdate& update) {
  if (by_transmits_.empty()) by_transmits_.resize(1);
  auto entry = std::make_unique<Entry>(Entry{false, update});
  auto [at, fresh] = by_address_.try_emplace(update.info.address, entry.get());
  if (!fresh) {
    at->second->superseded = true;
    at->second = entry.get();
  }
  by_transmits_[0].push_back(std::move(entry));
}

void BroadcastQueue::take(std::size_t max, int limit, std::vector<wire::MemberUpdate>* out) {
  // How far into each count the taken updates reach: all of counts 0 .. last - 1, the first
  // `reach` entries of count `last` (superseded entries among them are freed, not counted).
  std::size_t taken = 0, last = 0, reach = 0;
  for (std::size_t t = 0; t < by_transmits_.size() && taken < max; t++) {
    last = t;
    reach = 0;
    const Entries& entries = by_transmits_[t];
    for (std::size_t i = 0; i < entries.size() && taken < max; i++) {
      if (i + 4 < entries.size()) prefetch(*entries[i + 4]);
      reach = i + 1;
      const Entry& e = *entries[i];
      if (e.superseded) continue;
      if (out) out->push_back(e.update);
      taken++;
    }
  }
  if (reach > 0 || last > 0) {
    if (by_transmits_.size() < last + 2) by_transmits_.resize(last + 2);
    // From the highest count down, so that each moved group lands ahead of the group that was
    // at its new count and was not taken.
    for (std::size_t t = last + 1; t-- > 0;) {
      Entries& from = by_transmits_[t];
      Entries& to = by_transmits_[t + 1];
      const std::size_t n = t == last ? reach : from.size();
      for (std::size_t i = n; i-- > 0;) {
        if (from[i]->superseded) continue;
        to.push_front(std::move(from[i]));
      }
      from.erase(from.begin(), from.begin() + std::ptrdiff_t(n));
    }
  }
  for (std::size_t t = std::size_t(std::max(limit, 0)); t < by_transmits_.size(); t++) {
    for (const auto& e : by_transmits_[t]) {
      if (!e->superseded) by_address_.erase(e->update.info.address);
    }
    by_transmits_[t].clear();
  }
  while (by_transmits_.size() > 1 && by_transmits_.back().empty()) by_transmits_.pop_back();
}

}  // namespace troupe::discovery
