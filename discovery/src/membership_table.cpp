// Membership: the table of members and the indexes kept with it, so that a tick need not walk a
// thousand members: live_, dead_ and suspects_ hold the verified members by state.
#include <algorithm>

#include "troupe/discovery/membership.hpp"

namespace troupe::discovery {

using wire::MemberState;
using wire::MemberUpdate;

namespace {
bool live(MemberState s) { return s == MemberState::alive || s == MemberState::suspect; }
bool gone(MemberState s) { return s == MemberState::dead || s == MemberState::left; }
}  // namespace

void Membership::record(MemberChange change, const wire::MemberInfo& info) {
  if (change.info_changed || info.layers) stages_version_++;
  if (change.info_changed) {
    if (info.layers) {
      holders_.insert(change.address);
    } else {
      holders_.erase(change.address);
    }
  }
  changes_.push_back(std::move(change));
}

void Membership::set_live(const std::string& address, bool is_live) {
  auto it = std::lower_bound(live_.begin(), live_.end(), address);
  const bool there = it != live_.end() && *it == address;
  if (is_live && !there) live_.insert(it, address);
  if (!is_live && there) live_.erase(it);
}

void Membership::set_dead(const std::string& address, bool is_dead) {
  auto it = std::lower_bound(dead_.begin(), dead_.end(), address);
  const bool there = it != dead_.end() && *it == address;
  if (is_dead && !there) dead_.insert(it, address);
  if (!is_dead && there) dead_.erase(it);
}

// Adds m (verified) to the indexes of its state, or (on = false) takes it out of them.
void Membership::track(Member& m, bool on) {
  if (!m.verified) return;
  const std::string& address = m.key();
  if (live(m.state)) {
    set_live(address, on);
    live_members_ += on ? 1 : -1;
  }
  if (m.state == MemberState::dead) set_dead(address, on);
  if (m.state == MemberState::suspect) {
    if (on) {
      suspects_.emplace(address, &m);
    } else {
      suspects_.erase(address);
    }
  }
}

Member& Membership::insert(const MemberUpdate& u, TimePoint now, bool verified) {
  const std::string& address = u.info.address;
  Member m;
  m.info = u.info;
  m.state = u.state;
  m.incarnation = u.incarnation;
  m.since = now;
  m.suspect_deadline = now + suspicion_timeout(0);
  m.verified = verified;
  Member& added = members_.emplace(address, std::move(m)).first->second;
  index_.insert(&added);
  in_address_order_.insert(std::lower_bound(in_address_order_.begin(), in_address_order_.end(), address,
                                            [](const Member* a, const std::string& b) { return a->key() < b; }),
                           &added);
  track(added, true);
  return added;
}

void Membership::forget(std::string address) {
  auto it = members_.find(address);
  if (it == members_.end()) return;
  track(it->second, false);
  verification_.remove(address);
  index_.erase(address);
  if (holders_.erase(address)) stages_version_++;
  std::erase(in_address_order_, &it->second);
  if (probe_ && probe_->target == address) probe_.reset();
  members_.erase(it);
}

// Dead and left members leave the table forget_dead after they went.
void Membership::forget_gone(TimePoint now) {
  if (!earliest_gone_ || now - *earliest_gone_ <= config_.forget_dead) return;
  earliest_gone_.reset();
  std::vector<std::string> expired;
  for (const auto& [address, m] : members_) {
    if (!gone(m.state)) continue;
    if (now - m.since > config_.forget_dead) {
      expired.push_back(address);
    } else {
      earliest_gone_ = earliest_gone_ ? std::min(*earliest_gone_, m.since) : m.since;
    }
  }
  for (auto& address : expired) forget(std::move(address));
}

void Membership::set_state(Member& m, MemberState s, TimePoint now) {
  if (m.state == s) return;
  if (m.verified) record({m.key(), m.state, s, false}, m.info);
  enter_state(m, s, now);
}

void Membership::enter_state(Member& m, MemberState s, TimePoint now) {
  track(m, false);
  if (gone(s)) earliest_gone_ = earliest_gone_ ? std::min(*earliest_gone_, now) : now;
  m.state = s;
  m.since = now;
  m.suspecters.clear();
  if (s == MemberState::suspect) m.suspect_deadline = now + suspicion_timeout(0);
  track(m, true);
}

}  // namespace troupe::discovery
