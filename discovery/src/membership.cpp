#include "troupe/discovery/membership.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace troupe::discovery {

using wire::Gossip;
using wire::MemberState;
using wire::MemberUpdate;

namespace {

bool live(MemberState s) { return s == MemberState::alive || s == MemberState::suspect; }

}  // namespace

bool plausible_address(const std::string& a) {
  const auto colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == a.size() || a.size() - colon > 6) {
    return false;
  }
  // Checked in place, without copies: every member named in every gossip passes through here.
  int port = 0;
  for (std::size_t i = colon + 1; i < a.size(); i++) {
    if (a[i] < '0' || a[i] > '9') return false;
    port = port * 10 + (a[i] - '0');
  }
  if (port > 65535) return false;
  for (std::size_t i = 0; i < colon; i++) {
    const char c = a[i];
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!(alnum || c == '.' || c == '-' || c == '[' || c == ']' || c == ':')) return false;
  }
  return true;
}

Membership::Membership(wire::MemberInfo self, MembershipConfig config, uint64_t seed)
    : self_(std::move(self)), config_(config), rng_(seed | 1), live_{self_.address} {}

uint64_t Membership::random() {  // xorshift64*
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return rng_ * 0x2545F4914F6CDD1DULL;
}

void Membership::set_leadership(uint64_t term, std::string coordinator) {
  term_ = term;
  coordinator_ = std::move(coordinator);
}

MemberUpdate Membership::self_update() const {
  return {self_, left_ ? MemberState::left : MemberState::alive, incarnation_};
}

bool Membership::alive(const std::string& address) const {
  if (address == self_.address) return !left_;
  const Member* m = index_.find(address);
  return m && live(m->state);
}

const std::vector<std::string>& Membership::live_addresses() const { return live_; }

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

Millis Membership::suspicion_timeout(int confirmations) const {
  // Lifeguard: from max down to min as log(confirmations + 1) / log(expected + 1).
  const int n = live_members_ + (left_ ? 0 : 1);  // live_addresses().size(), without building it
  const int expected = std::max(1, std::min(3, n - 2));
  const double frac = std::log(double(confirmations) + 1) / std::log(double(expected) + 1);
  const double ms = double(config_.suspicion_max.count()) -
                    double(config_.suspicion_max.count() - config_.suspicion_min.count()) *
                        std::min(frac, 1.0);
  return Millis(static_cast<int64_t>(std::max(ms, double(config_.suspicion_min.count()))));
}

// --- sending -----------------------------------------------------------------------------------

// A newer word on a member replaces the older one still waiting to be spread.
void Membership::enqueue(const MemberUpdate& u) { broadcasts_.push(u); }

// Each update rides on this many messages: enough to reach every member with high probability
// (SWIM's infection-style dissemination).
int Membership::transmit_limit() const {
  return config_.retransmit_mult * static_cast<int>(std::ceil(std::log2(double(members_.size()) + 2)));
}

Gossip Membership::gossip(Gossip::Kind kind, const std::string& target, uint64_t probe, bool piggyback) {
  Gossip g;
  g.kind = kind;
  g.probe = probe;
  g.from = self_.address;
  g.target = target;
  g.term = term_;
  g.coordinator = coordinator_;
  // Piggyback the least-spread updates.
  if (piggyback) g.updates.reserve(std::min(config_.max_piggyback, broadcasts_.size()));
  broadcasts_.take(config_.max_piggyback, transmit_limit(), piggyback ? &g.updates : nullptr);
  return g;
}

void Membership::send(const std::string& to, Gossip g) { outgoing_.push_back({to, std::move(g)}); }

void Membership::send_sync(const std::string& to, Gossip::Kind kind) {
  // A sync carries the table instead of the queued updates, yet counts a transmission of the
  // updates it would have carried, as every gossip does.
  Gossip g = gossip(kind, {}, 0, false);
  g.updates.push_back(self_update());
  // The first members in address order, as many as a gossip holds; fetched a few ahead, for
  // they lie all over memory.
  const std::size_t n = std::min(in_address_order_.size(), wire::kMaxPeers - 1);
  g.updates.reserve(n + 1);
  for (std::size_t i = 0; i < n; i++) {
    if (i + 6 < n) {
      const Member* ahead = in_address_order_[i + 6];
      for (std::size_t line = 0; line < sizeof(Member); line += 64) {
        __builtin_prefetch(reinterpret_cast<const char*>(ahead) + line);
      }
    }
    const Member& m = *in_address_order_[i];
    g.updates.push_back({m.info, m.state, m.incarnation});
  }
  send(to, std::move(g));
}

std::vector<Outgoing> Membership::take_outgoing() { return std::exchange(outgoing_, {}); }
std::vector<MemberChange> Membership::take_changes() { return std::exchange(changes_, {}); }
std::vector<std::string> Membership::take_warnings() { return std::exchange(warnings_, {}); }

void Membership::warn(const std::string& key, std::string text) {
  if (warned_.size() < 1024 && warned_.insert(key).second) warnings_.push_back(std::move(text));
}

// --- probing -----------------------------------------------------------------------------------

std::string Membership::next_probe_target() {
  while (true) {
    if (probe_order_.empty()) {
      for (const auto& [address, m] : members_) {
        if (live(m.state)) probe_order_.push_back(address);
      }
      if (probe_order_.empty()) return {};
      for (std::size_t i = probe_order_.size() - 1; i > 0; i--) {
        std::swap(probe_order_[i], probe_order_[random() % (i + 1)]);
      }
    }
    std::string target = probe_order_.back();
    probe_order_.pop_back();
    if (alive(target)) return target;
  }
}

std::vector<std::string> Membership::random_live(std::size_t k, const std::set<std::string>& except) {
  // The alive members in address order (live_ less self and suspects), shuffled as pointers:
  // only the k chosen are copied.
  std::vector<const std::string*> pool;
  pool.reserve(live_.size());
  for (const auto& address : live_) {
    if (address != self_.address && !suspects_.count(address) && !except.count(address)) pool.push_back(&address);
  }
  for (std::size_t i = 0; i < pool.size() && i < k; i++) {
    std::swap(pool[i], pool[i + random() % (pool.size() - i)]);
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < pool.size() && i < k; i++) out.push_back(*pool[i]);
  return out;
}

void Membership::start_probe(const std::string& target, TimePoint now) {
  probe_ = Probe{target, next_probe_id_++, now, false};
  send(target, gossip(Gossip::Kind::ping, {}, probe_->id));
}

void Membership::suspect(const std::string& address, TimePoint now) {
  Member* m = index_.find(address);
  if (!m || m->state != MemberState::alive) return;
  set_state(*m, address, MemberState::suspect, now);
  enqueue({m->info, MemberState::suspect, m->incarnation});
}

void Membership::connection_lost(const std::string& address, TimePoint now) {
  if (left_ || !alive(address) || address == self_.address) return;
  if (probe_ && probe_->target == address) return;
  start_probe(address, now);  // an unfinished probe of another member is abandoned, not failed
}

// --- the state machine -------------------------------------------------------------------------

void Membership::join(const std::vector<std::string>& addresses, TimePoint now) {
  for (const auto& a : addresses) {
    if (a != self_.address) joins_.push_back(a);
  }
  for (const auto& a : joins_) send_sync(a, Gossip::Kind::sync);
  next_sync_at_ = now + config_.sync_interval;
  next_probe_at_ = now + config_.probe_interval;
}

void Membership::tick(TimePoint now) {
  if (left_) return;
  if (probe_) {
    if (!probe_->indirect_sent && now >= probe_->sent + config_.probe_timeout) {
      probe_->indirect_sent = true;
      for (const auto& helper : random_live(std::size_t(config_.indirect_probes), {probe_->target})) {
        send(helper, gossip(Gossip::Kind::ping_req, probe_->target, probe_->id));
      }
    }
    if (now >= probe_->sent + config_.probe_interval) {
      const std::string target = probe_->target;
      probe_.reset();
      suspect(target, now);
    }
  }
  if (!probe_ && now >= next_probe_at_) {
    next_probe_at_ = now + config_.probe_interval;
    const std::string target = next_probe_target();
    if (!target.empty()) start_probe(target, now);
  }
  // The suspects whose time is up, in address order as members_ holds them.
  std::vector<std::string> expired;
  for (const auto& [address, m] : suspects_) {
    if (now >= m->suspect_deadline) expired.push_back(address);
  }
  for (const auto& address : expired) {
    Member& m = *index_.find(address);
    set_state(m, address, MemberState::dead, now);
    enqueue({m.info, MemberState::dead, m.incarnation});
  }
  if (earliest_gone_ && now - *earliest_gone_ > config_.forget_dead) {
    earliest_gone_.reset();
    for (auto it = members_.begin(); it != members_.end();) {
      const bool gone = it->second.state == MemberState::dead || it->second.state == MemberState::left;
      if (gone && now - it->second.since > config_.forget_dead) {
        index_.erase(it->first);
        holders_.erase(it->first);
        set_dead(it->first, false);
        std::erase(in_address_order_, &it->second);
        it = members_.erase(it);
        continue;
      }
      if (gone) earliest_gone_ = earliest_gone_ ? std::min(*earliest_gone_, it->second.since) : it->second.since;
      ++it;
    }
  }
  for (auto it = relays_.begin(); it != relays_.end();) {
    it = now - it->second.sent > 2 * config_.probe_interval ? relays_.erase(it) : std::next(it);
  }
  if (now >= next_sync_at_) {
    next_sync_at_ = now + config_.sync_interval;
    const auto peers = random_live(1, {});
    if (!peers.empty()) send_sync(peers.front(), Gossip::Kind::sync);
    for (const auto& a : joins_) {
      if (!members_.count(a)) send_sync(a, Gossip::Kind::sync);  // not heard of yet: ask again
    }
    // And one member declared dead: after a partition heals, this is how the two sides hear of
    // each other again (the dead one refutes its death and answers with its own table).
    if (!dead_.empty()) send_sync(dead_[random() % dead_.size()], Gossip::Kind::sync);
  }
}

void Membership::receive(const Gossip& g, TimePoint now) {
  if (left_) return;
  if (!plausible_address(g.from) || (g.kind == Gossip::Kind::ping_req && !plausible_address(g.target))) {
    warn("from " + g.from, "dropped gossip from '" + g.from.substr(0, 64) + "': not a HOST:PORT address");
    return;
  }
  prefetch(g.updates);
  for (const auto& u : g.updates) apply(u, now);
  switch (g.kind) {
    case Gossip::Kind::ping:
      send(g.from, gossip(Gossip::Kind::ack, self_.address, g.probe));
      break;
    case Gossip::Kind::ping_req: {
      const uint64_t id = next_probe_id_++;
      relays_[id] = {g.from, g.probe, now};
      send(g.target, gossip(Gossip::Kind::ping, {}, id));
      break;
    }
    case Gossip::Kind::ack:
      if (probe_ && g.probe == probe_->id && g.target == probe_->target) {
        probe_.reset();
      } else if (auto it = relays_.find(g.probe); it != relays_.end()) {
        send(it->second.requester, gossip(Gossip::Kind::ack, g.target, it->second.their_probe));
        relays_.erase(it);
      }
      break;
    case Gossip::Kind::sync:
      send_sync(g.from, Gossip::Kind::sync_reply);
      break;
    case Gossip::Kind::sync_reply:
      break;
  }
}

void Membership::set_state(Member& m, const std::string& address, MemberState s, TimePoint now) {
  if (m.state == s) return;
  record({address, m.state, s, false}, m.info);
  if (live(s) != live(m.state)) set_live(address, live(s));
  if ((s == MemberState::dead) != (m.state == MemberState::dead)) set_dead(address, s == MemberState::dead);
  if (m.state == MemberState::suspect) suspects_.erase(address);
  if (s == MemberState::suspect) suspects_.emplace(address, &m);
  live_members_ += live(s) - live(m.state);
  if (s == MemberState::dead || s == MemberState::left) {
    earliest_gone_ = earliest_gone_ ? std::min(*earliest_gone_, now) : now;
  }
  m.state = s;
  m.since = now;
  if (s == MemberState::suspect) {
    m.confirmations = 0;
    m.suspect_deadline = now + suspicion_timeout(0);
  }
}

// A sync names up to 256 members, and the tables of a thousand-member mesh are far out of cache:
// fetch the index slots of all of them, then the members, before applying any, rather than wait
// for memory once per member. Only warms the cache; changes nothing.
void Membership::prefetch(const std::vector<MemberUpdate>& updates) const {
  if (updates.size() < 8) return;
  std::vector<std::size_t> hashes;
  hashes.reserve(updates.size());
  for (const auto& u : updates) {
    hashes.push_back(index_.hash(u.info.address));
    index_.prefetch_slot(hashes.back());
  }
  for (std::size_t h : hashes) {
    if (const Member* m = index_.peek(h)) {
      __builtin_prefetch(m);
      __builtin_prefetch(&m->info.address);
      __builtin_prefetch(&m->info.instance);
    }
  }
}

void Membership::apply(const MemberUpdate& u, TimePoint now) {
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
  if (!found) {
    add_member(u, now);
    return;
  }
  Member& m = *found;
  if (u.info.instance < m.info.instance) return;  // news of an earlier life
  if (u.info.instance > m.info.instance) {        // a restart: a new member at the old address
    m.info = u.info;
    m.incarnation = u.incarnation;
    set_state(m, address, u.state, now);
    record({address, m.state, m.state, true}, m.info);
    enqueue(u);
    return;
  }
  apply_state(m, u, now);
}

void Membership::apply_about_self(const MemberUpdate& u) {
  if (u.info.instance > self_.instance) return;  // not about this process
  // A suspicion or death of this member (or news of an earlier life at this address): refute
  // it with a higher incarnation, which overrides it everywhere.
  if (u.info.instance < self_.instance || (u.state != MemberState::alive && u.incarnation >= incarnation_)) {
    incarnation_ = std::max(incarnation_, u.incarnation) + 1;
    enqueue(self_update());
  }
}

void Membership::add_member(const MemberUpdate& u, TimePoint now) {
  const std::string& address = u.info.address;
  if (!live(u.state)) return;  // no need to learn of strangers that are gone
  if (members_.size() >= config_.max_members) {
    // Anyone may send gossip: a flood of invented members must not grow the table forever.
    warn("full", "member table full (" + std::to_string(members_.size()) + "); ignoring new members");
    return;
  }
  Member m;
  m.info = u.info;
  m.state = u.state;
  m.incarnation = u.incarnation;
  m.since = now;
  m.suspect_deadline = now + suspicion_timeout(0);
  Member& added = members_.emplace(address, std::move(m)).first->second;
  index_.insert(&added);
  in_address_order_.insert(std::lower_bound(in_address_order_.begin(), in_address_order_.end(), address,
                                            [](const Member* a, const std::string& b) { return a->key() < b; }),
                           &added);
  set_live(address, true);
  if (u.state == MemberState::suspect) suspects_.emplace(address, &added);
  live_members_++;
  record({address, std::nullopt, u.state, true}, added.info);
  enqueue(u);
}

// SWIM's rules for news of a known member's state, at the same instance.
void Membership::apply_state(Member& m, const MemberUpdate& u, TimePoint now) {
  const std::string& address = u.info.address;
  switch (u.state) {
    case MemberState::alive:
      if (u.incarnation > m.incarnation && m.state != MemberState::left) {
        const bool info_changed = !(u.info == m.info);
        m.info = u.info;
        m.incarnation = u.incarnation;
        set_state(m, address, MemberState::alive, now);
        if (info_changed) record({address, m.state, m.state, true}, m.info);
        enqueue(u);
      }
      break;
    case MemberState::suspect:
      if ((m.state == MemberState::alive && u.incarnation >= m.incarnation) ||
          (m.state == MemberState::suspect && u.incarnation > m.incarnation)) {
        m.incarnation = u.incarnation;
        set_state(m, address, MemberState::suspect, now);
        enqueue(u);
      } else if (m.state == MemberState::suspect && u.incarnation == m.incarnation) {
        // Another member suspects it too: the suspicion is more likely right; shorten it.
        m.confirmations++;
        m.suspect_deadline = std::min(m.suspect_deadline, m.since + suspicion_timeout(m.confirmations));
      }
      break;
    case MemberState::dead:
    case MemberState::left:
      if (live(m.state) && u.incarnation >= m.incarnation) {
        m.incarnation = u.incarnation;
        set_state(m, address, u.state, now);
        enqueue(u);
      }
      break;
  }
}

void Membership::update_self(const wire::MemberInfo& info) {
  if (info == self_) return;
  self_ = info;
  incarnation_++;
  stages_version_++;
  enqueue(self_update());
}

void Membership::leave(TimePoint) {
  if (left_) return;
  left_ = true;
  set_live(self_.address, false);
  incarnation_++;
  for (const auto& address : live_addresses()) {
    if (address == self_.address) continue;
    Gossip g;
    g.kind = Gossip::Kind::sync_reply;
    g.from = self_.address;
    g.term = term_;
    g.coordinator = coordinator_;
    g.updates.push_back(self_update());
    send(address, std::move(g));
  }
}

}  // namespace troupe::discovery
