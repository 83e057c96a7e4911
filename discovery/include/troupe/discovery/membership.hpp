// Membership by SWIM (Das, Gupta, Motivala 2002) with two of Lifeguard's refinements (Dadgar et
// al. 2018): suspicion timeouts that shrink as independent suspicions confirm them, and a member
// that refutes a suspicion of itself by raising its incarnation.
//
// A plain state machine: the host hands it received gossip, connection hints and the time, and
// takes from it the frames to send and the changes to react to. No threads, no clock reads, no
// randomness but its own seeded generator, so the simulator runs it as the node does.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "troupe/discovery/broadcast_queue.hpp"
#include "troupe/discovery/member_index.hpp"
#include "troupe/protocol/transport.hpp"
#include "troupe/protocol/wire.hpp"

namespace troupe::discovery {

using TimePoint = Clock::time_point;
using Millis = std::chrono::milliseconds;

struct MembershipConfig {
  Millis probe_interval{250};  // one member probed per interval, round robin in random order
  Millis probe_timeout{120};   // no ack by then: ask `indirect_probes` others to probe it
  int indirect_probes = 3;
  Millis suspicion_min{600};   // a suspect is declared dead after between min and max,
  Millis suspicion_max{3000};  // shorter the more members confirm the suspicion
  int retransmit_mult = 3;     // each update rides on mult * log2(members + 2) messages
  Millis sync_interval{2000};  // full member table exchanged with one random live member and
                               // one dead one
  Millis forget_dead{600000};  // dead members leave the table after this long
  std::size_t max_piggyback = 24;
  std::size_t max_members = 4096;  // gossip naming more new members than this is ignored
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
  int confirmations = 0;             // suspect: independent suspicions heard
  wire::MemberInfo info;
  const std::string& key() const { return info.address; }  // for MemberIndex
};

struct Outgoing {
  std::string to;  // address
  wire::Body body;
};

// What changed, for the host: a member appeared, changed state, or advertised new info.
struct MemberChange {
  std::string address;
  std::optional<wire::MemberState> before;  // none: new
  wire::MemberState after;
  bool info_changed = false;
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
  void tick(TimePoint now);
  void receive(const wire::Gossip& gossip, TimePoint now);
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
  // Gossip it refused, for the host's log (once per sender or member).
  std::vector<std::string> take_warnings();

  const wire::MemberInfo& self() const { return self_; }
  bool has_left() const { return left_; }
  uint64_t incarnation() const { return incarnation_; }
  const std::map<std::string, Member>& members() const { return members_; }  // not self
  bool alive(const std::string& address) const;  // alive or suspect; self included
  // Addresses of the members counted as live (alive or suspect), self included, sorted. Kept
  // between changes: the hosts ask on every tick, and a mesh may have a thousand members.
  const std::vector<std::string>& live_addresses() const;
  // Counts the changes that can move the stages members hold: a member holding layers changing
  // state, any member's information changing, this node's own included. What hosts derive from
  // the stages (a route) needs finding again only when it moved.
  uint64_t stages_version() const { return stages_version_; }
  // The members (not self) whose information names layers they hold, in address order: a few
  // among many in a large mesh.
  const std::set<std::string>& holders() const { return holders_; }

 private:
  struct Probe {
    std::string target;
    uint64_t id = 0;
    TimePoint sent{};
    bool indirect_sent = false;
  };
  struct Relay {  // a ping sent for another member's ping_req
    std::string requester;
    uint64_t their_probe = 0;
    TimePoint sent{};
  };
  wire::MemberUpdate self_update() const;
  // A gossip from this member, piggybacking queued updates (or only counting them as sent).
  wire::Gossip gossip(wire::Gossip::Kind kind, const std::string& target = {}, uint64_t probe = 0,
                      bool piggyback = true);
  int transmit_limit() const;
  void prefetch(const std::vector<wire::MemberUpdate>& updates) const;
  void send(const std::string& to, wire::Gossip g);
  void send_sync(const std::string& to, wire::Gossip::Kind kind);
  void apply(const wire::MemberUpdate& u, TimePoint now);
  void apply_about_self(const wire::MemberUpdate& u);
  void add_member(const wire::MemberUpdate& u, TimePoint now);
  void apply_state(Member& m, const wire::MemberUpdate& u, TimePoint now);
  void set_state(Member& m, const std::string& address, wire::MemberState s, TimePoint now);
  void enqueue(const wire::MemberUpdate& u);
  void set_live(const std::string& address, bool is_live);
  void set_dead(const std::string& address, bool is_dead);
  void start_probe(const std::string& target, TimePoint now);
  void suspect(const std::string& address, TimePoint now);
  std::string next_probe_target();
  std::vector<std::string> random_live(std::size_t k, const std::set<std::string>& except);
  uint64_t random();
  Millis suspicion_timeout(int confirmations) const;

  wire::MemberInfo self_;
  MembershipConfig config_;
  uint64_t rng_;
  uint64_t incarnation_ = 0;
  bool left_ = false;
  uint64_t term_ = 0;
  std::string coordinator_;
  std::map<std::string, Member> members_;
  MemberIndex<Member> index_;  // members_ by address, for the hot lookups
  std::vector<Member*> in_address_order_;  // members_ in its order, for syncs to walk quickly
  // Kept with members_ so that a tick need not walk the whole table (see set_state):
  std::vector<std::string> live_;  // live_addresses(), sorted, kept up to date by set_state
  std::vector<std::string> dead_;  // members in state dead, sorted, kept up to date by set_state
  std::map<std::string, Member*> suspects_;    // members in state suspect (nodes of members_)
  int live_members_ = 0;                       // members alive or suspect, self not counted
  std::optional<TimePoint> earliest_gone_;     // at or before the oldest dead or left member's `since`
  std::vector<std::string> probe_order_;
  std::optional<Probe> probe_;
  std::map<uint64_t, Relay> relays_;
  uint64_t next_probe_id_ = 1;
  TimePoint next_probe_at_{}, next_sync_at_{};
  // Addresses to join through. Each is asked again at every sync until it is a member: knowing
  // other members is not enough, for those may be nodes that joined through this one, and a
  // group that never heard from its seed would stay a mesh of its own (found by the simulator).
  std::vector<std::string> joins_;
  BroadcastQueue broadcasts_;
  std::vector<Outgoing> outgoing_;
  std::vector<MemberChange> changes_;
  uint64_t stages_version_ = 0;
  std::set<std::string> holders_;
  // Every change of a member goes through here; `info` is the member's as it now stands.
  void record(MemberChange change, const wire::MemberInfo& info) {
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
  std::vector<std::string> warnings_;
  std::set<std::string> warned_;
  void warn(const std::string& key, std::string text);
};

}  // namespace troupe::discovery
