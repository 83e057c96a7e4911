// Membership: what one update in a gossip does to the table — SWIM's rules, within the bounds
// every value from a peer must keep (bounds.hpp), with candidates for members heard of through
// others (verification.hpp), and refutation of any claim about this member.
#include <algorithm>

#include "troupe/discovery/bounds.hpp"
#include "troupe/discovery/membership.hpp"

namespace troupe::discovery {

using wire::MemberState;
using wire::MemberUpdate;

namespace {

bool live(MemberState s) { return s == MemberState::alive || s == MemberState::suspect; }

// Whether the member's own proven word `u` shows that `m` (this node's record) is something the
// member never said: a later instance than the process at the address, or an incarnation further
// ahead of its own than it refutes. Its word then replaces the record.
bool overridden_by(const Member& m, const MemberUpdate& u) {
  if (u.info.instance != m.info.instance) return u.info.instance < m.info.instance;
  return m.incarnation > u.incarnation && m.incarnation - u.incarnation > kMaxJump;
}

std::string either(std::string a, std::string b) { return a.empty() ? b : a; }

std::string within_cap(const MemberUpdate& u) {
  return either(counter_problem("instance", u.info.instance, std::nullopt),
                counter_problem("incarnation", u.incarnation, std::nullopt));
}

}  // namespace

void Membership::apply(const MemberUpdate& u, TimePoint now, const Source& source) {
  const std::string& address = u.info.address;
  if (!plausible_address(address)) {
    warn("member " + address, "dropped news of member '" + address.substr(0, 64) + "': not a HOST:PORT address");
    return;
  }
  if (address == self_.address) {
    apply_about_self(u);
    return;
  }
  // Members of another model never join this mesh.
  if (u.info.model != self_.model || u.info.model_layers != self_.model_layers) {
    const std::string file = config_.model_file.empty() ? "" : " from " + config_.model_file;
    warn("model " + address, "member " + u.info.name + " (" + address + ") runs another model (" +
                                 u.info.model + "; this node: " + self_.model + file + "); ignored");
    return;
  }
  Member* found = index_.find(address);
  const std::string problem = found ? bounds_problem(*found, u, source) : within_cap(u);
  if (!problem.empty()) {
    warn("bounds " + address, "dropped news of member " + address + " from " + source.printable.substr(0, 64) +
                                  ": " + problem);
    return;
  }
  if (!found) {
    add_member(u, now, source);
    return;
  }
  Member& m = *found;
  if (source.proven && overridden_by(m, u)) {
    replace(m, u, now, source);
    return;
  }
  if (u.info.instance < m.info.instance) return;  // news of an earlier life
  if (u.info.instance > m.info.instance) {        // a restart: a new member at the old address
    replace(m, u, now, source);
    return;
  }
  if (!m.verified) {
    update_candidate(m, u);
    return;
  }
  apply_state(m, u, now);
}

// Why `u` may not change the record `m` (empty: it may). The member's own word in a direct answer
// keeps only the cap; its word otherwise may jump twice as far as others' claims about it, so
// that its refutation of any claim it refutes passes everywhere (bounds.hpp).
std::string Membership::bounds_problem(const Member& m, const MemberUpdate& u, const Source& source) const {
  if (source.proven) return within_cap(u);
  const uint64_t jump = source.own_word ? 2 * kMaxJump : kMaxJump;
  if (u.info.instance > m.info.instance) {
    // A new instance starts at incarnation 0 and rises one refutation or load at a time.
    return either(counter_problem("instance", u.info.instance, m.info.instance, kMaxInstanceJump),
                  counter_problem("a new instance's incarnation", u.incarnation, 0, jump));
  }
  if (u.info.instance < m.info.instance) return {};  // ignored anyway
  return counter_problem("incarnation", u.incarnation, m.incarnation, jump);
}

// A claim about this member that others could believe beats its own word, and is refuted by a
// word that beats the claim: the claimed instance, and an incarnation above the claim's. Within
// the bounds every member applies (bounds.hpp), or the refutation itself would be refused; a
// claim further ahead gives way to this member's direct answers to those who took it.
void Membership::apply_about_self(const MemberUpdate& u) {
  if (u.info.instance < self_.instance) {  // news of an earlier life here: this one's word beats it
    enqueue(self_update());
    return;
  }
  const MemberUpdate own = self_update();
  if (u == own) return;
  const bool later = u.info.instance > self_.instance;
  if (!later && u.incarnation < incarnation_) {  // beaten by this member's word already
    if (u.state != MemberState::alive) enqueue(own);
    return;
  }
  std::string problem;
  if (later) problem = counter_problem("instance", u.info.instance, self_.instance, kMaxInstanceJump);
  if (problem.empty()) problem = counter_problem("incarnation", u.incarnation, later ? 0 : incarnation_);
  if (problem.empty()) problem = counter_problem("incarnation", u.incarnation + 1, std::nullopt);
  if (!problem.empty()) {
    warn("self", "cannot refute a claim about this node (" + problem +
                     "); members that took it will correct it when this node answers their probes");
    return;
  }
  self_.instance = u.info.instance;
  incarnation_ = u.incarnation + 1;
  enqueue(self_update());
}

void Membership::add_member(const MemberUpdate& u, TimePoint now, const Source& source) {
  const bool verified = source.proven || source.vouched;
  if (!live(u.state) || (!verified && u.state != MemberState::alive)) return;  // nothing to learn
  if (members_.size() >= config_.max_members) {
    // Anyone may send gossip: a flood of invented members must not grow the table forever.
    warn("full", "member table full (" + std::to_string(members_.size()) + "); ignoring new members");
    return;
  }
  if (!verified && !admit_candidate(source, now)) return;
  Member& m = insert(u, now, verified);
  if (!verified) {
    verification_.add(u.info.address);
    return;
  }
  record({u.info.address, std::nullopt, u.state, true}, m.info);
  enqueue(u);
}

// Room for one more candidate introduced by `source`: within its sender's share, and within the
// bound on candidates, making room by forgetting one pinged in vain.
bool Membership::admit_candidate(const Source& source, TimePoint now) {
  if (!verification_.may_introduce(source.introducer, now)) {
    warn("introductions " + source.printable,
         source.printable.substr(0, 64) + " introduces more new members than a node takes from one sender (" +
             std::to_string(config_.verification.per_sender) + " per " +
             std::to_string(config_.verification.window.count()) + " ms); ignoring the rest");
    return false;
  }
  if (!verification_.full()) return true;
  const auto stale = verification_.evictable(now);
  if (!stale) {
    warn("candidates", "too many members heard of and not yet verified (" +
                           std::to_string(verification_.size()) + "); ignoring new members for now");
    return false;
  }
  forget(*stale);
  return true;
}

// Another process at m's address: a later instance, or (its own word in a direct answer) whatever
// instance answers. The earlier process is gone: hosts that used it are told. The new one is a
// candidate, unless it spoke for itself.
void Membership::replace(Member& m, const MemberUpdate& u, TimePoint now, const Source& source) {
  const std::string address = u.info.address;  // a copy: forget() frees m
  const bool verified = source.proven || source.vouched;
  const bool was_verified = m.verified;
  const MemberState before = m.state;
  const bool has_slot = verification_.pending(address);  // a candidate replaced: keeps its place
  if (!verified && (u.state != MemberState::alive || (!has_slot && !admit_candidate(source, now)))) {
    // Gone in its new life too (or a forged claim), or no room: forgotten until heard of again.
    if (was_verified) record({address, before, u.state, true, true}, u.info);
    forget(address);
    return;
  }
  track(m, false);
  m.info = u.info;
  m.incarnation = u.incarnation;
  m.verified = verified;
  m.state = MemberState::alive;  // a candidate's, and the new process's until it says otherwise
  m.since = now;
  if (verified) {
    verification_.remove(address);
    track(m, true);
    if (u.state != MemberState::alive) enter_state(m, u.state, now);
    enqueue(u);
  } else if (!has_slot) {
    verification_.add(address);
  }
  if (verified || was_verified) {
    record({address, was_verified ? std::optional(before) : std::nullopt, m.state, true, was_verified}, m.info);
  }
}

// SWIM's rules for news of a verified member's state, at the same instance.
void Membership::apply_state(Member& m, const MemberUpdate& u, TimePoint now) {
  switch (u.state) {
    case MemberState::alive:
      if (u.incarnation > m.incarnation && m.state != MemberState::left) {
        const bool info_changed = !(u.info == m.info);
        m.info = u.info;
        m.incarnation = u.incarnation;
        set_state(m, MemberState::alive, now);
        if (info_changed) record({m.key(), m.state, m.state, true}, m.info);
        enqueue(u);
      }
      break;
    case MemberState::suspect:
      if ((m.state == MemberState::alive && u.incarnation >= m.incarnation) ||
          (m.state == MemberState::suspect && u.incarnation > m.incarnation)) {
        m.incarnation = u.incarnation;
        set_state(m, MemberState::suspect, now);
        confirm_suspicion(m, u.by);
        enqueue(u);
      } else if (m.state == MemberState::suspect && u.incarnation == m.incarnation) {
        // Another member suspecting it too makes the suspicion more likely right: shorter.
        confirm_suspicion(m, u.by);
      }
      break;
    case MemberState::dead:
    case MemberState::left:
      // A goodbye outranks a death: a member declared dead (its goodbye lost, or it left while
      // cut off from this node) that is heard to have left is `left` everywhere in the end.
      if ((live(m.state) || (m.state == MemberState::dead && u.state == MemberState::left)) &&
          u.incarnation >= m.incarnation) {
        m.incarnation = u.incarnation;
        set_state(m, u.state, now);
        enqueue(u);
      }
      break;
  }
}

// A candidate is alive, or forgotten: heard of again when someone says it is alive.
void Membership::update_candidate(Member& m, const MemberUpdate& u) {
  if (u.state != MemberState::alive) {
    forget(m.key());
  } else if (u.incarnation > m.incarnation) {
    m.info = u.info;
    m.incarnation = u.incarnation;
  }
}

// The candidate answered: a member, reported to the host and spread.
void Membership::verify(Member& m, TimePoint now) {
  if (m.verified) return;
  verification_.remove(m.key());
  m.verified = true;
  m.since = now;
  track(m, true);
  record({m.key(), std::nullopt, m.state, true}, m.info);
  enqueue({m.info, m.state, m.incarnation, {}});
}

}  // namespace troupe::discovery
