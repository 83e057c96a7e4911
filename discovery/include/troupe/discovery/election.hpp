// Coordinator election with terms (docs/mesh.md). A term is a ballot (number, claimant), ordered
// by number and then by the claimant's address, as Paxos orders ballots: two claimants can never
// hold the same term, and every member follows the highest term it has heard of. A member claims
// a new term only when its coordinator is gone (not alive or suspect in its membership view), and
// then only in its turn: the live members wait in the order of their addresses, `backoff` apart,
// so that with stable membership exactly one claims. A member that joins or restarts hears the
// current term from its first exchange of member tables and follows it — unless the term names
// this member (its earlier life's, or a forged one): then it claims the next term at once. Terms
// are bounded (bounds.hpp): the host refuses one far past the current term before it gets here.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "troupe/discovery/membership.hpp"
#include "troupe/discovery/sim_hook.hpp"

namespace troupe::discovery {

struct Leadership {
  uint64_t term = 0;
  std::string coordinator;  // address; empty: none yet
  bool operator==(const Leadership&) const = default;
};
// Whether `a` is a later term than `b`.
bool supersedes(const Leadership& a, const Leadership& b);

struct ElectionConfig {
  Millis settle{800};    // after start, time to hear of an existing coordinator before claiming
  Millis backoff{600};   // between the turns of successive members
};

class Election {
 public:
  // `hook` (which must outlive it) may turn on BrokenVariant::accept_any_term.
  Election(std::string self, ElectionConfig config, TimePoint started, const SimHook& hook = SimHook::none());

  // A term heard of (in gossip or a plan): followed when it is later. True when it was, or when,
  // naming this node, it made this node claim the next.
  bool observe(const Leadership& heard);
  // Claims the next term when the coordinator is gone and this member's turn has come. `live`:
  // the live members' addresses, sorted, this one's included. `wait`: this member knows too
  // little to claim yet — it has not heard from the mesh it joins, or its coordinator is missing
  // from `live` only because it has not heard from it yet. True when it claimed.
  bool tick(TimePoint now, const std::vector<std::string>& live, bool wait = false);

  const Leadership& current() const { return current_; }
  bool is_coordinator() const { return current_.coordinator == self_; }

 private:
  std::string self_;
  ElectionConfig config_;
  const SimHook* hook_;
  TimePoint started_;
  Leadership current_;
  std::optional<TimePoint> vacant_since_;
};

}  // namespace troupe::discovery
