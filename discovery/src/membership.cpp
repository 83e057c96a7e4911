// Membership: construction, sending, probing and the timers. The news a gossip brings is applied
// in membership_news.cpp, the table kept in membership_table.cpp.
#include "troupe/discovery/membership.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "siphash.hpp"

namespace troupe::discovery {

using wire::Gossip;
using wire::MemberState;
using wire::MemberUpdate;

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
    : self_(std::move(self)),
      config_(config),
      rng_(seed | 1),
      live_{self_.address},
      verification_(config.verification) {
  probe_key_[0] = random();
  probe_key_[1] = random();
}

uint64_t Membership::random() {  // xorshift64*
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return rng_ * 0x2545F4914F6CDD1DULL;
}

uint64_t Membership::next_probe() {
  const uint64_t id = siphash24(probe_key_[0], probe_key_[1], probes_sent_++);
  return id == 0 ? 1 : id;  // 0: a gossip that answers no ping
}

void Membership::set_leadership(uint64_t term, std::string coordinator) {
  term_ = term;
  coordinator_ = std::move(coordinator);
}

MemberUpdate Membership::self_update() const {
  return {self_, left_ ? MemberState::left : MemberState::alive, incarnation_, {}};
}

bool Membership::alive(const std::string& address) const {
  if (address == self_.address) return !left_;
  const Member* m = index_.find(address);
  return m && m->verified && (m->state == MemberState::alive || m->state == MemberState::suspect);
}

bool Membership::verified(const std::string& address) const {
  const Member* m = index_.find(address);
  return m && m->verified;
}

const std::vector<std::string>& Membership::live_addresses() const { return live_; }

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

// A suspecter not heard of before confirms the suspicion, which shortens it. Past the number that
// brings the timeout to its minimum, more say nothing: the list stays small whatever a member sends.
void Membership::confirm_suspicion(Member& m, const std::string& by) {
  constexpr std::size_t kEnough = 4;  // suspicion_timeout's `expected` is at most 3 others
  if (by.empty() || m.suspecters.size() >= kEnough ||
      std::find(m.suspecters.begin(), m.suspecters.end(), by) != m.suspecters.end()) {
    return;
  }
  m.suspecters.push_back(by);
  const int confirmations = int(m.suspecters.size()) - 1;
  if (confirmations > 0) m.suspect_deadline = std::min(m.suspect_deadline, m.since + suspicion_timeout(confirmations));
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
  if (piggyback) g.updates.reserve(std::min(config_.max_piggyback, broadcasts_.size()) + 1);
  broadcasts_.take(config_.max_piggyback, transmit_limit(), piggyback ? &g.updates : nullptr);
  return g;
}

void Membership::send(const std::string& to, Gossip g) { outgoing_.push_back({to, std::move(g)}); }

void Membership::send_sync(const std::string& to, Gossip::Kind kind) {
  // A sync carries the table instead of the queued updates, yet counts a transmission of the
  // updates it would have carried, as every gossip does.
  Gossip g = gossip(kind, {}, 0, false);
  g.updates.push_back(self_update());
  const std::size_t n = in_address_order_.size();
  g.updates.reserve(std::min(n + 1, wire::kMaxPeers));
  if (n + 1 <= wire::kMaxPeers) {
    for (std::size_t i = 0; i < n; i++) add_to_sync(g, i);
  } else {
    add_larger_table(g);
  }
  send(to, std::move(g));
}

// The verified member at in_address_order_[i % size], if there is room; the members a few ahead
// are fetched meanwhile, for they lie all over memory.
void Membership::add_to_sync(Gossip& g, std::size_t i) const {
  const std::size_t n = in_address_order_.size();
  const Member* ahead = in_address_order_[(i + 6) % n];
  for (std::size_t line = 0; line < sizeof(Member); line += 64) {
    __builtin_prefetch(reinterpret_cast<const char*>(ahead) + line);
  }
  const Member& m = *in_address_order_[i % n];
  if (m.verified && g.updates.size() < wire::kMaxPeers) g.updates.push_back({m.info, m.state, m.incarnation, {}});
}

// A table larger than a gossip holds: the members holding stages first (a node that joins a large
// mesh late must hear of every stage holder to take the plan and find a route), then a window
// that moves on at every sync, so that the whole table goes round. (The first members in address
// order every time left a late joiner unaware of the holders past the 256th address until one of
// them changed: it never took the plan, and its stage was never loaded.)
void Membership::add_larger_table(Gossip& g) {
  const bool holders_first = holders_.size() < wire::kMaxPeers / 2;
  if (holders_first) {
    for (const auto& address : holders_) {
      const Member* m = index_.find(address);
      if (m && m->verified) g.updates.push_back({m->info, m->state, m->incarnation, {}});
    }
  }
  const std::size_t n = in_address_order_.size();
  const std::size_t start = sync_cursor_ % n;
  std::size_t i = start;
  for (; i < start + n && g.updates.size() < wire::kMaxPeers; i++) {
    const Member& m = *in_address_order_[i % n];
    if (holders_first && m.info.layers && holders_.count(m.key())) continue;  // named above
    add_to_sync(g, i);
  }
  sync_cursor_ = i % n;
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
      for (const auto& address : live_) {
        if (address != self_.address) probe_order_.push_back(address);
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
  probe_ = Probe{target, next_probe(), next_probe(), now, false};
  send(target, gossip(Gossip::Kind::ping, {}, probe_->id));
}

// This node's own probe of `address` failed. A member suspected already on another's word is
// confirmed by it, here and, once told, everywhere: without that, two members whose probes both
// failed never counted each other (the second heard the first before its own probe ended) and a
// dead stage took suspicion_max to be declared so, not suspicion_min.
void Membership::suspect(const std::string& address, TimePoint now) {
  Member* m = index_.find(address);
  if (!m || !m->verified) return;
  if (m->state == MemberState::suspect) {
    if (std::find(m->suspecters.begin(), m->suspecters.end(), self_.address) != m->suspecters.end()) return;
    confirm_suspicion(*m, self_.address);
    enqueue({m->info, MemberState::suspect, m->incarnation, self_.address});
    return;
  }
  if (m->state != MemberState::alive) return;
  set_state(*m, MemberState::suspect, now);
  m->suspecters.push_back(self_.address);
  enqueue({m->info, MemberState::suspect, m->incarnation, self_.address});
}

void Membership::connection_lost(const std::string& address, TimePoint now) {
  if (left_ || !alive(address) || address == self_.address) return;
  if (probe_ && probe_->target == address) return;
  start_probe(address, now);  // an unfinished probe of another member is abandoned, not failed
}

// Past the configured times only when the measured round trip asks for it: the direct ping's
// timeout 1.5 round trips, the period that plus the indirect probe's two; at most the longest
// suspicion, so that a member stays checked.
TimePoint::duration Membership::probe_timeout() const {
  return std::min<TimePoint::duration>(std::max<TimePoint::duration>(config_.probe_timeout, round_trip_ * 3 / 2),
                                   config_.suspicion_max / 2);
}

TimePoint::duration Membership::probe_period() const {
  return std::min<TimePoint::duration>(std::max<TimePoint::duration>(config_.probe_interval, probe_timeout() + 2 * round_trip_),
                                   config_.suspicion_max);
}

// A suspicion lasts longer, in proportion, while the measured round trip stretches the probe
// period past its configured interval: a refutation needs round trips too, and under a slow
// network every member's suspicions and refutations crowd the gossip. It is read when the
// suspicion is judged, not when it began: the first suspicions of a latency spell are raised
// before any late ack has measured it.
TimePoint::duration Membership::stretched(TimePoint::duration suspicion) const {
  const auto period = probe_period();
  const auto interval = std::chrono::duration_cast<TimePoint::duration>(config_.probe_interval);
  if (period <= interval) return suspicion;
  return suspicion * period.count() / interval.count();
}

void Membership::measured_round_trip(TimePoint::duration sample) {
  round_trip_ = sample > round_trip_ ? sample : round_trip_ - (round_trip_ - sample) / 2;
}

void Membership::probe_tick(TimePoint now) {
  if (probe_) {
    if (!probe_->indirect_sent && now >= probe_->sent + probe_timeout()) {
      probe_->indirect_sent = true;
      for (const auto& helper : random_live(std::size_t(config_.indirect_probes), {probe_->target})) {
        send(helper, gossip(Gossip::Kind::ping_req, probe_->target, probe_->indirect_id));
      }
    }
    if (now >= probe_->sent + probe_period()) {
      const std::string target = probe_->target;
      late_probes_.push_back(std::move(*probe_));
      if (late_probes_.size() > kLateProbes) late_probes_.pop_front();
      probe_.reset();
      suspect(target, now);
    }
  }
  if (!probe_ && now >= next_probe_at_) {
    next_probe_at_ = now + probe_period();
    const std::string target = next_probe_target();
    if (!target.empty()) start_probe(target, now);
  }
  for (auto it = relays_.begin(); it != relays_.end();) {
    it = now - it->second.sent > 2 * probe_period() ? relays_.erase(it) : std::next(it);
  }
}

// Candidates are pinged a few per tick; those that never answer are forgotten.
void Membership::verification_tick(TimePoint now) {
  const auto due = verification_.tick(now, [this] { return next_probe(); });
  for (const auto& [address, probe] : due.pings) send(address, gossip(Gossip::Kind::ping, {}, probe));
  for (const auto& address : due.failed) forget(address);
}

// The push-pull period: sync_interval up to 32 members, then one more interval each time the mesh
// doubles (memberlist's scaling). A sync carries up to 256 members both ways, so a fixed period
// made the table exchange grow with the square of the mesh (a thousand members each decoding and
// applying 256 records a second was most of the simulator's time), while piggybacked gossip
// already spreads every change in O(log n) rounds.
Millis Membership::sync_period() const {
  const int members = live_members_ + 1;
  int steps = 1;
  for (int n = 32; n < members; n *= 2) steps++;
  return config_.sync_interval * steps;
}

void Membership::sync_tick(TimePoint now) {
  if (now < next_join_at_) return;
  next_join_at_ = now + config_.sync_interval;
  for (const auto& a : joins_) {
    if (!members_.count(a)) send_sync(a, Gossip::Kind::sync);  // not heard of yet: ask again
  }
  if (!asked_.empty() && verified(asked_)) asked_.clear();
  if (!asked_.empty()) send_sync(asked_, Gossip::Kind::sync);
  if (now < next_sync_at_) return;
  next_sync_at_ = now + sync_period();
  const auto peers = random_live(1, {});
  if (!peers.empty()) send_sync(peers.front(), Gossip::Kind::sync);
  // And one member declared dead: after a partition heals, this is how the two sides hear of
  // each other again (the dead one refutes its death and answers with its own table). It is
  // pinged too: a claim of its death too far ahead for it to refute (bounds.hpp) gives way to
  // its direct answer.
  dead_ping_.reset();
  if (!dead_.empty()) {
    const std::string& address = dead_[random() % dead_.size()];
    send_sync(address, Gossip::Kind::sync);
    dead_ping_.emplace(address, next_probe());
    send(address, gossip(Gossip::Kind::ping, {}, dead_ping_->second));
  }
}

// --- the state machine -------------------------------------------------------------------------

void Membership::join(const std::vector<std::string>& addresses, TimePoint now) {
  for (const auto& a : addresses) {
    if (a != self_.address) joins_.push_back(a);
  }
  for (const auto& a : joins_) send_sync(a, Gossip::Kind::sync);
  next_sync_at_ = next_join_at_ = now + config_.sync_interval;
  next_probe_at_ = now + config_.probe_interval;
}

bool Membership::joining() const {
  return !joins_.empty() && std::none_of(joins_.begin(), joins_.end(), [&](const std::string& a) { return members_.count(a) > 0; });
}

void Membership::ask_for_table(const std::string& address) {
  if (address == self_.address || !plausible_address(address)) return;
  asked_ = address;
  send_sync(address, Gossip::Kind::sync);
}

void Membership::tick(TimePoint now) {
  if (left_) return;
  probe_tick(now);
  verification_tick(now);
  // The suspects whose time is up, in address order as members_ holds them.
  std::vector<std::string> expired;
  for (const auto& [address, m] : suspects_) {
    if (now >= m->since + stretched(m->suspect_deadline - m->since)) expired.push_back(address);
  }
  for (const auto& address : expired) {
    Member& m = *index_.find(address);
    set_state(m, MemberState::dead, now);
    enqueue({m.info, MemberState::dead, m.incarnation, {}});
  }
  forget_gone(now);
  sync_tick(now);
}

void Membership::receive(const Gossip& g, TimePoint now, const std::string& sender) {
  if (left_) return;
  if (!plausible_address(g.from) || (g.kind == Gossip::Kind::ping_req && !plausible_address(g.target))) {
    warn("from " + g.from, "dropped gossip from '" + g.from.substr(0, 64) + "': not a HOST:PORT address");
    return;
  }
  const bool proven = g.kind == Gossip::Kind::ack && take_ack(g, now);
  const bool vouched = !sender.empty() && sender == g.from;
  const std::string& introducer = sender.empty() ? g.from : sender;
  prefetch(g.updates);
  for (const auto& u : g.updates) {
    const bool own_word = u.info.address == g.from;
    apply(u, now, Source{introducer, g.from, own_word, own_word && proven, own_word && vouched});
  }
  // The sender itself answered (or the transport vouches that it spoke): verified.
  if (proven || vouched) {
    if (Member* m = index_.find(g.from)) verify(*m, now);
  }
  answer(g, now);
}

// What a gossip asks for: an ack to a ping, a relayed ping, a table for a table.
void Membership::answer(const Gossip& g, TimePoint now) {
  switch (g.kind) {
    case Gossip::Kind::ping: {
      // The ack carries this member's own word first: answering a ping numbered only for this
      // address, it is taken as such (membership_news.cpp).
      Gossip ack = gossip(Gossip::Kind::ack, self_.address, g.probe);
      ack.updates.insert(ack.updates.begin(), self_update());
      send(g.from, std::move(ack));
      break;
    }
    case Gossip::Kind::ping_req: {
      if (relays_.size() >= config_.max_relays) break;  // anyone may ask: a bounded favour
      const uint64_t id = next_probe();
      relays_[id] = {g.from, g.probe, g.target, now};
      send(g.target, gossip(Gossip::Kind::ping, {}, id));
      break;
    }
    case Gossip::Kind::sync:
      send_sync(g.from, Gossip::Kind::sync_reply);
      break;
    case Gossip::Kind::ack:  // taken before its news (take_ack)
    case Gossip::Kind::sync_reply:
      break;
  }
}

// An ack ends the probe or relay it answers. True when it answers, directly, a ping of this
// node's own: only the process at the pinged address saw that ping's number (probe numbers are
// unguessable, and a ping_req's helpers are given another), so what it says of itself in the ack
// is its own word.
bool Membership::take_ack(const Gossip& g, TimePoint now) {
  const bool direct = g.from == g.target;
  if (probe_ && g.target == probe_->target && (g.probe == probe_->id || g.probe == probe_->indirect_id)) {
    const bool proof = direct && g.probe == probe_->id;
    if (proof) measured_round_trip(now - probe_->sent);
    probe_.reset();
    return proof;
  }
  const auto late = std::find_if(late_probes_.begin(), late_probes_.end(), [&](const Probe& p) {
    return direct && g.from == p.target && g.probe == p.id;
  });
  if (late != late_probes_.end()) {
    // Too late to spare it the suspicion (only its own refutation ends that), not too late to be measured.
    measured_round_trip(now - late->sent);
    late_probes_.erase(late);
    return true;
  }
  if (auto it = relays_.find(g.probe); it != relays_.end() && it->second.target == g.target) {
    send(it->second.requester, gossip(Gossip::Kind::ack, g.target, it->second.their_probe));
    relays_.erase(it);
    return direct;
  }
  if (dead_ping_ && direct && dead_ping_->first == g.from && dead_ping_->second == g.probe) {
    dead_ping_.reset();
    return true;
  }
  return direct && verification_.answered(g.from, g.probe);
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
