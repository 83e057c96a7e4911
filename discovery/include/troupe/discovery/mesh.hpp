// One node's part in the mesh protocol: membership (SWIM), the coordinator's term, and the stage
// plan, composed into one plain state machine. The node's actors host it over ZeroMQ and the
// system clock; the simulator hosts the same object over virtual links and a virtual clock.
//
// What it decides: which layer range this node should hold (assignment()), which live stages a
// new or re-routed session should pass through (route()), and — on the coordinator — the plan
// every member follows. What it does not do: load weights or run sessions; the host reports what
// it has loaded through set_loaded().
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "troupe/discovery/election.hpp"
#include "troupe/discovery/membership.hpp"
#include "troupe/discovery/planner.hpp"

namespace troupe::discovery {

struct MeshConfig {
  MembershipConfig membership;
  ElectionConfig election;
  Millis plan_quiet{300};    // membership unchanged this long before the coordinator re-plans,
  Millis plan_wait{1500};    // or changing all along since this long (a mesh forming, a storm)
  Millis plan_repeat{1000};  // the coordinator repeats its plan to every member this often
  ModelCost cost;
};

struct MemberView {
  wire::MemberInfo info;
  wire::MemberState state = wire::MemberState::alive;
  bool self = false;
  TimePoint since{};  // when it entered `state` (this node: when the mesh began)
};

class Mesh {
 public:
  // `hook` (which must outlive it) reaches the election's broken variants.
  Mesh(wire::MemberInfo self, MeshConfig config, uint64_t seed, TimePoint now,
       const SimHook& hook = SimHook::none());

  void join(const std::vector<std::string>& addresses, TimePoint now);
  void tick(TimePoint now);
  // `sender`: the address the frame came from as the transport knows it (Membership::receive).
  void receive(const wire::Gossip& gossip, TimePoint now, const std::string& sender = {});
  // A plan is followed only when it keeps the bounds (bounds.hpp) and fits this node's model:
  // its stages within [0, n_layers), in layer order, none overlapping, and covering every layer
  // unless the plan says why not (else refused, with a warning); and only once every member it
  // names has been verified (until then it is held). A plan of this node's own term that it did
  // not make is answered with its own.
  void receive(const wire::PlanAnnounce& plan, TimePoint now);
  void connection_lost(const std::string& address, TimePoint now);
  // The layers this node now serves (after loading or releasing them).
  void set_loaded(std::optional<LayerRange> layers);
  void leave(TimePoint now);

  std::vector<Outgoing> take_outgoing();
  std::vector<MemberChange> take_changes();
  std::vector<std::string> take_warnings() { return membership_.take_warnings(); }

  const Leadership& leadership() const { return election_.current(); }
  bool is_coordinator() const { return election_.is_coordinator(); }
  const wire::PlanAnnounce& plan() const { return plan_; }
  // The range the plan gives this node (its pinned range when it has one).
  std::optional<LayerRange> assignment() const;
  // Live (alive, not suspect) verified members' loaded stages chaining [0, n_layers), the plan's
  // preferred; empty when none do, and then route_problem() says why ("starting: ..." while the
  // mesh has had neither a plan nor a stage loaded).
  const std::vector<StageHolder>& route() const;
  // Counts the times route() came out different: a host that saw the same count needs no compare.
  uint64_t route_changes() const {
    route();
    return route_changes_;
  }
  std::string route_problem() const;
  // Whether the alive members (suspects left out) could cover the model under some plan: when
  // not, a session that lost its route has nothing to wait for.
  bool could_cover() const;
  std::vector<MemberView> members() const;  // this node first, then the verified members
  std::string name_of(const std::string& address) const;
  const Membership& membership() const { return membership_; }

 private:
  void publish_plan(TimePoint now);
  // Follows `heard` (from gossip or a plan sent by `from`) unless it is past the bounds.
  void follow(const Leadership& heard, const std::string& from, TimePoint now);
  bool confirming_coordinator(TimePoint now) const;
  bool too_early_to_claim(TimePoint now) const;
  std::string plan_problem(const wire::PlanAnnounce& plan) const;
  bool stages_known(const wire::PlanAnnounce& plan) const;
  Plan compute_plan() const;
  std::optional<LayerRange> own_stage() const;  // in plan_
  // This node and the alive verified members (and the suspects, when asked), as the planner
  // takes them: a member heard of only through others is not given layers.
  std::vector<PlanMember> plan_members(bool with_suspects) const;
  // The ranges this node and the alive verified members have loaded.
  std::vector<StageHolder> loaded_stages() const;

  MeshConfig config_;
  Membership membership_;
  Election election_;
  wire::PlanAnnounce plan_;          // the latest accepted
  // Since when this node follows a coordinator it has not verified (told of its term by others).
  std::optional<TimePoint> confirming_since_;
  std::optional<wire::PlanAnnounce> deferred_plan_;  // valid, naming members not yet verified
  // The range plan_ gives this node, found when plan_ changes: hosts ask after every event.
  std::optional<LayerRange> planned_;
  Leadership plan_leader_;           // the term it came from
  TimePoint started_{};
  TimePoint last_change_{};
  std::optional<TimePoint> planned_at_change_;  // last_change_ when the coordinator last planned
  std::optional<TimePoint> unplanned_since_;    // the first tick since then to see a change
  TimePoint next_repeat_{};
  std::vector<Outgoing> outgoing_;
  std::vector<MemberChange> changes_;
  // route(), found again only when the plan or the members changed: hosts ask after every event,
  // and a mesh may have a thousand members.
  mutable std::optional<std::vector<StageHolder>> route_;
  mutable uint64_t route_version_ = 0;  // the membership's stages_version() it was found at
  mutable uint64_t route_changes_ = 0;
};

}  // namespace troupe::discovery
