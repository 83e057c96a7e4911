// Membership by SWIM (Das, Gupta, Motivala 2002) with two of Lifeguard's refinements (Dadgar et
// al. 2018): suspicion timeouts that shrink as independent suspicions confirm them, and a member
// that refutes a claim about itself by raising its incarnation.
//
// Every member's gossip is taken as untrusted (docs/mesh.md, "What a member can do to others"):
// counters are bounded (bounds.hpp); a member heard of through others is a candidate until it
// answers a ping of this node's own (verification.hpp); a direct answer to such a ping is the
// member's own word and beats whatever others said of it; a member refutes any claim about
// itself that others could believe, a later instance at its address included.
//
// A plain state machine: the host hands it received gossip, connection hints and the time, and
// takes from it the frames to send and the changes to react to. No threads, no clock reads, no
// randomness but its own seeded generator, so the simulator runs it as the node does.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "troupe/discovery/broadcast_queue.hpp"
#include "troupe/discovery/member_index.hpp"
#include "troupe/discovery/verification.hpp"
#include "troupe/protocol/transport.hpp"
#include "troupe/protocol/wire.hpp"

namespace troupe::discovery {

struct MembershipConfig {
  Millis probe_interval{250};  // one member probed per interval, round robin in random order
  Millis probe_timeout{120};   // no ack by then: ask `indirect_probes` others to probe it
  int indirect_probes = 3;
  Millis suspicion_min{600};   // a suspect is declared dead after between min and max,
  Millis suspicion_max{3000};  // shorter the more members confirm the suspicion
  int retransmit_mult = 3;     // each update rides on mult * log2(members + 2) messages
  Millis sync_interval{2000};  // full member table exchanged with one random live member and
                               // one dead one (longer past 32 members: sync_period()); joins
                               // not yet answered are asked again
  Millis forget_dead{600000};  // dead members leave the table after this long
  std::size_t max_piggyback = 24;
  std::size_t max_members = 4096;  // gossip naming more new members than this is ignored
  std::size_t max_relays = 64;     // pings sent for others' ping_reqs, at a time
  VerificationConfig verification;
  std::string model_file;          // this node's model file, named when another model is refused
};

// HOST:PORT, as --listen takes it. Addresses arrive in gossip, which anyone may send: anything
// else is dropped before the transport is asked to connect to it.
bool plausible_address(const std::string& address);

// One member as this node sees it. (The fields every gossip reads come first, near the address.)
struct Member {
  wire::MemberState state = wire::MemberState::alive;
  uint64_t incarnation = 0;
  TimePoint since{};                 // when it entered `state`
  TimePoint suspect_deadline{};      // suspect: when it is declared dead
  // suspect: the distinct members heard suspecting it (MemberUpdate::by), the first included.
  // Each beyond the first shortens the suspicion (Lifeguard); a suspicion's echoes through
  // gossip name its one suspecter and do not.
  std::vector<std::string> suspecters;
  // It answered a ping of this node's own, or spoke for itself over a connection the transport
  // vouches for. Until then it is a candidate: always alive, never probed by SWIM, planned,
  // routed through, reported to the host or spread in gossip.
  bool verified = false;
  wire::MemberInfo info;
  const std::string& key() const { return info.address; }  // for MemberIndex
};

struct Outgoing {
  std::string to;  // address
  wire::Body body;
};

// What changed, for the host: a member was verified (new), changed state, advertised new info,
// or was replaced by a later instance at its address.
struct MemberChange {
  std::string address;
  std::optional<wire::MemberState> before;  // none: new
  wire::MemberState after;
  bool info_changed = false;
  // Another process now has the address: the earlier one is gone, whatever `after` says (a
  // restart within the suspicion timeout goes from alive to alive).
  bool replaced = false;
};

class Membership {
 public:
  Membership(wire::MemberInfo self, MembershipConfig config, uint64_t seed);
  // Not copyable: suspects_ and index_ point into members_ (a move keeps them valid).
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;
  Membership(Membership&&) = default;
  Membership& operator=(Membership&&) = default;

  // Asks the members at `addresses` for their tables (until one answers, on every sync).
  void join(const std::vector<std::string>& addresses, TimePoint now);
  // Asks the member at `address` for its table now, and again every sync interval until it is a
  // verified member or another is asked (one at a time: addresses come from gossip).
  void ask_for_table(const std::string& address);
  void tick(TimePoint now);
  // `sender`: the address the frame came from as a transport that authenticates its peers knows
  // it (empty: unknown; the members introduced are then counted against the gossip's `from`).
  // Where it is the gossip's own `from`, that member is verified, as if it had answered a ping.
  // Never a ZeroMQ routing id: the connecting peer chooses those.
  void receive(const wire::Gossip& gossip, TimePoint now, const std::string& sender = {});
  // The transport saw the connection to `address` break: probe it now rather than in turn.
  void connection_lost(const std::string& address, TimePoint now);
  // This member's own info changed (it loaded other layers): spread it under a new incarnation.
  void update_self(const wire::MemberInfo& info);
  // Graceful leave: tell everyone this member is leaving.
  void leave(TimePoint now);

  // Every gossip this machine sends carries the host's view of the coordinator's term.
  void set_leadership(uint64_t term, std::string coordinator);

  std::vector<Outgoing> take_outgoing();
  std::vector<MemberChange> take_changes();
  // Gossip it refused, for the host's log (once per key: a sender, a member, a reason).
  std::vector<std::string> take_warnings();
  void warn(const std::string& key, std::string text);

  const wire::MemberInfo& self() const { return self_; }
  bool has_left() const { return left_; }
  // Whether it was asked to join through members and none of them is in its table yet.
  bool joining() const;
  uint64_t incarnation() const { return incarnation_; }
  // Every member in the table, candidates included (not self).
  const std::map<std::string, Member>& members() const { return members_; }
  const Member* find(const std::string& address) const { return index_.find(address); }
  std::size_t candidates() const { return verification_.size(); }
  // The verified members now suspect, and those dead (addresses, sorted): a few in a large table.
  const std::map<std::string, Member*>& suspects() const { return suspects_; }
  const std::vector<std::string>& dead() const { return dead_; }
  bool alive(const std::string& address) const;  // verified and alive or suspect; self included
  bool verified(const std::string& address) const;  // in the table and verified, in any state
  // Addresses of the verified members counted as live (alive or suspect), self included, sorted.
  // Kept between changes: the hosts ask on every tick, and a mesh may have a thousand members.
  const std::vector<std::string>& live_addresses() const;
  // Counts the changes that can move the stages members hold: a member holding layers changing
  // state, any member's information changing, this node's own included. What hosts derive from
  // the stages (a route) needs finding again only when it moved.
  uint64_t stages_version() const { return stages_version_; }
  // The members (not self) whose information names layers they hold, in address order: a few
  // among many in a large mesh. (Candidates among them: check `verified`.)
  const std::set<std::string>& holders() const { return holders_; }

 private:
  struct Probe {
    std::string target;
    uint64_t id = 0;           // the ping's: only the target sees it
    uint64_t indirect_id = 0;  // the ping_reqs': the helpers see it
    TimePoint sent{};
    bool indirect_sent = false;
  };
  struct Relay {  // a ping sent for another member's ping_req
    std::string requester;
    uint64_t their_probe = 0;
    std::string target;
    TimePoint sent{};
  };
  // Where a gossip's update came from, for the bounds it must keep (membership_news.cpp).
  struct Source {
    const std::string& introducer;  // whom new members it names count against
    const std::string& printable;   // the sender, as a log line names it
    bool own_word = false;          // an update about the gossip's sender itself
    bool proven = false;            // ...in a direct answer to a ping of this node's own
    bool vouched = false;           // ...over a connection the transport says is the sender's
  };
  wire::MemberUpdate self_update() const;
  // A gossip from this member, piggybacking queued updates (or only counting them as sent).
  wire::Gossip gossip(wire::Gossip::Kind kind, const std::string& target = {}, uint64_t probe = 0,
                      bool piggyback = true);
  int transmit_limit() const;
  void prefetch(const std::vector<wire::MemberUpdate>& updates) const;
  void send(const std::string& to, wire::Gossip g);
  void send_sync(const std::string& to, wire::Gossip::Kind kind);
  void add_to_sync(wire::Gossip& g, std::size_t i) const;
  void add_larger_table(wire::Gossip& g);
  void answer(const wire::Gossip& g, TimePoint now);
  bool take_ack(const wire::Gossip& g, TimePoint now);
  // A probe's timeout and period: the configured ones, stretched to the round trips measured
  // (a network that slows down past them would otherwise have every member suspect every other).
  TimePoint::duration probe_timeout() const;
  TimePoint::duration probe_period() const;
  TimePoint::duration stretched(TimePoint::duration suspicion) const;
  void measured_round_trip(TimePoint::duration sample);
  void enqueue(const wire::MemberUpdate& u);
  uint64_t random();
  uint64_t next_probe();  // unguessable (siphash.hpp)
  Millis suspicion_timeout(int confirmations) const;
  void confirm_suspicion(Member& m, const std::string& by);

  // The news (membership_news.cpp).
  void apply(const wire::MemberUpdate& u, TimePoint now, const Source& source);
  std::string bounds_problem(const Member& m, const wire::MemberUpdate& u, const Source& source) const;
  void apply_about_self(const wire::MemberUpdate& u);
  void add_member(const wire::MemberUpdate& u, TimePoint now, const Source& source);
  bool admit_candidate(const Source& source, TimePoint now);
  void replace(Member& m, const wire::MemberUpdate& u, TimePoint now, const Source& source);
  void apply_state(Member& m, const wire::MemberUpdate& u, TimePoint now);
  void update_candidate(Member& m, const wire::MemberUpdate& u);
  void verify(Member& m, TimePoint now);

  // The table (membership_table.cpp).
  Member& insert(const wire::MemberUpdate& u, TimePoint now, bool verified);
  void forget(std::string address);  // a copy: the member it names goes
  void forget_gone(TimePoint now);
  void set_state(Member& m, wire::MemberState s, TimePoint now);  // recorded for the host
  void enter_state(Member& m, wire::MemberState s, TimePoint now);  // not recorded
  void track(Member& m, bool on);  // live_, dead_, suspects_, live_members_: verified members
  void set_live(const std::string& address, bool is_live);
  void set_dead(const std::string& address, bool is_dead);

  // Probing (membership.cpp).
  void start_probe(const std::string& target, TimePoint now);
  void probe_tick(TimePoint now);
  void verification_tick(TimePoint now);
  void sync_tick(TimePoint now);
  Millis sync_period() const;
  void suspect(const std::string& address, TimePoint now);
  std::string next_probe_target();
  std::vector<std::string> random_live(std::size_t k, const std::set<std::string>& except);

  wire::MemberInfo self_;
  MembershipConfig config_;
  uint64_t rng_;
  uint64_t probe_key_[2] = {0, 0};  // siphash key of the probe numbers, drawn from the seed
  uint64_t probes_sent_ = 0;
  uint64_t incarnation_ = 0;
  bool left_ = false;
  uint64_t term_ = 0;
  std::string coordinator_;
  std::map<std::string, Member> members_;
  MemberIndex<Member> index_;  // members_ by address, for the hot lookups
  std::vector<Member*> in_address_order_;  // members_ in its order, for syncs to walk quickly
  std::size_t sync_cursor_ = 0;            // where the next sync of a larger table starts in it
  // Kept with members_ so that a tick need not walk the whole table (see track):
  std::vector<std::string> live_;  // live_addresses(), sorted
  std::vector<std::string> dead_;  // verified members in state dead, sorted
  std::map<std::string, Member*> suspects_;    // verified members in state suspect
  int live_members_ = 0;                       // verified members alive or suspect, self not counted
  std::optional<TimePoint> earliest_gone_;     // at or before the oldest dead or left member's `since`
  std::vector<std::string> probe_order_;
  std::optional<Probe> probe_;
  // The last probes that ended without an ack, newest last: an ack arriving late is still a round
  // trip. Several: when the round trip grows past a few probe periods at once (a latency spell),
  // each probe's ack comes after the next probes ended, and only it measures the new round trip.
  static constexpr std::size_t kLateProbes = 8;
  std::deque<Probe> late_probes_;
  // The round trip of direct acks to this node's pings: up at once to a longer one, down by half
  // the difference per shorter one (after a latency spell, probes and suspicions are quick again
  // within a few probes).
  TimePoint::duration round_trip_{0};
  std::map<uint64_t, Relay> relays_;
  // The member declared dead that the last sync interval pinged (and synced): its direct answer
  // overrides a claim of its death that it could not refute (bounds.hpp).
  std::optional<std::pair<std::string, uint64_t>> dead_ping_;
  Verification verification_;
  TimePoint next_probe_at_{}, next_sync_at_{}, next_join_at_{};
  // Addresses to join through. Each is asked again at every sync until it is a member: knowing
  // other members is not enough, for those may be nodes that joined through this one, and a
  // group that never heard from its seed would stay a mesh of its own (found by the simulator).
  std::vector<std::string> joins_;
  std::string asked_;  // ask_for_table()'s, until it is a verified member
  BroadcastQueue broadcasts_;
  std::vector<Outgoing> outgoing_;
  std::vector<MemberChange> changes_;
  uint64_t stages_version_ = 0;
  std::set<std::string> holders_;
  // Every change of a verified member goes through here; `info` is the member's as it now stands.
  void record(MemberChange change, const wire::MemberInfo& info);
  std::vector<std::string> warnings_;
  std::set<std::string> warned_;
};

}  // namespace troupe::discovery
