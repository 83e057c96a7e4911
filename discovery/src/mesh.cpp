#include "troupe/discovery/mesh.hpp"

#include <algorithm>
#include <utility>

#include "troupe/discovery/bounds.hpp"

namespace troupe::discovery {

using wire::MemberState;

Mesh::Mesh(wire::MemberInfo self, MeshConfig config, uint64_t seed, TimePoint now, const SimHook& hook)
    : config_(config),
      membership_(self, config.membership, seed),
      election_(self.address, config.election, now, hook),
      started_(now),
      last_change_(now),
      next_repeat_(now) {}

void Mesh::join(const std::vector<std::string>& addresses, TimePoint now) {
  membership_.join(addresses, now);
}

void Mesh::connection_lost(const std::string& address, TimePoint now) {
  membership_.connection_lost(address, now);
}

void Mesh::set_loaded(std::optional<LayerRange> layers) {
  wire::MemberInfo info = membership_.self();
  info.layers = layers;
  membership_.update_self(info);
}

void Mesh::leave(TimePoint now) { membership_.leave(now); }

void Mesh::receive(const wire::Gossip& gossip, TimePoint now, const std::string& sender) {
  if (membership_.has_left()) return;
  membership_.receive(gossip, now, sender);
  for (auto& c : membership_.take_changes()) {
    last_change_ = now;
    changes_.push_back(std::move(c));
  }
  if (gossip.term > 0 && plausible_address(gossip.from)) follow({gossip.term, gossip.coordinator}, gossip.from, now);
}

// A coordinator this node has not verified (it joined or restarted, and heard of the term from
// others) is asked for its table at once, and is not taken for gone until that has had time to
// be answered: in a mesh of a thousand members a newcomer meets most of them only over tens of
// seconds, and one that claimed a term meanwhile would win it (a later term) and coordinate a
// mesh it mostly does not know, leaving the members it has not met without its plans.
void Mesh::follow(const Leadership& heard, const std::string& from, TimePoint now) {
  const uint64_t term = election_.current().term;
  const std::string problem = counter_problem("term", heard.term, term > 0 ? std::optional(term) : std::nullopt);
  if (problem.empty()) {
    if (!election_.observe(heard) || election_.is_coordinator() || membership_.verified(heard.coordinator)) return;
    confirming_since_ = now;
    membership_.ask_for_table(heard.coordinator);
  } else {
    membership_.warn("term " + from, "ignored the term " + from.substr(0, 64) + " follows: " + problem);
  }
}

// Why a received plan is not followed: its counters past the bounds, or stages that do not fit
// this node's model (a plan naming layers the model lacks, two stages for one layer, or a plan
// said to be complete that leaves layers to nobody would have members load what no route can
// use). A plan the coordinator says is incomplete (`problem`) may leave layers out.
std::string Mesh::plan_problem(const wire::PlanAnnounce& plan) const {
  const uint64_t term = election_.current().term;
  std::string problem = counter_problem("term", plan.term, term > 0 ? std::optional(term) : std::nullopt);
  if (!problem.empty()) return problem;
  problem = counter_problem("version", plan.version, plan_.version > 0 ? std::optional(plan_.version) : std::nullopt);
  if (!problem.empty()) return problem;
  const int n_layers = config_.cost.n_layers;
  const bool complete = plan.problem.empty();
  int next = 0;  // the first layer the next stage may begin at
  for (const auto& s : plan.stages) {
    auto stage = [&] { return "stage " + format_range(s.layers) + " on " + s.address.substr(0, 64); };
    if (s.layers.end > n_layers || s.layers.begin < 0) {
      return stage() + " is outside the model's " + std::to_string(n_layers) + " layers";
    }
    if (s.layers.begin < next || s.layers.begin >= s.layers.end) return stage() + " overlaps another or is out of layer order";
    if (complete && s.layers.begin > next) {
      return "layers " + format_range({next, s.layers.begin}) + " are on no stage of a plan said to be complete";
    }
    next = s.layers.end;
  }
  if (complete && next != n_layers) {
    return "layers " + format_range({next, n_layers}) + " are on no stage of a plan said to be complete";
  }
  return {};
}

// Whether every stage of `plan` is on this node or on a member that answered its probes: a plan
// from a member gone bad must not give layers to members it invented, nor route sessions to them.
bool Mesh::stages_known(const wire::PlanAnnounce& plan) const {
  for (const auto& s : plan.stages) {
    if (s.address == membership_.self().address) continue;
    if (!membership_.verified(s.address)) return false;
  }
  return true;
}

void Mesh::receive(const wire::PlanAnnounce& plan, TimePoint now) {
  if (membership_.has_left()) return;
  if (const std::string problem = plan_problem(plan); !problem.empty()) {
    membership_.warn("plan " + plan.coordinator + " " + problem.substr(0, 16),
                     "refused a plan of " + plan.coordinator.substr(0, 64) + ": " + problem);
    return;
  }
  if (!stages_known(plan)) {
    // The coordinator may have verified a member this node has not yet: held until it has (the
    // latest such plan only; the coordinator repeats its plan anyway).
    deferred_plan_ = plan;
    return;
  }
  const Leadership from{plan.term, plan.coordinator};
  if (from == election_.current() && election_.is_coordinator()) {
    // This node's own term, in a plan it did not send (its own are never sent to itself): a
    // forged one, or one from its earlier life. Members that took it follow versions above it:
    // this node's plan goes out again, numbered past it.
    if (plan.version >= plan_.version && !(plan.stages == plan_.stages && plan.version == plan_.version)) {
      plan_.version = plan.version + 1;
      publish_plan(now);
    }
    return;
  }
  follow(from, plan.coordinator, now);
  if (!(from == election_.current())) return;  // a plan of an earlier term (or naming this node)
  if (from == plan_leader_ && plan.version <= plan_.version) return;
  plan_ = plan;
  plan_leader_ = from;
  planned_ = own_stage();
  route_.reset();
}

std::vector<PlanMember> Mesh::plan_members(bool with_suspects) const {
  std::vector<PlanMember> members;
  auto add = [&](const wire::MemberInfo& info) {
    members.push_back({info.name, info.address, info.throughput, info.mem_budget, info.base_rss, info.pinned});
  };
  add(membership_.self());
  for (const auto& [address, m] : membership_.members()) {
    if (!m.verified) continue;
    if (m.state == MemberState::alive || (with_suspects && m.state == MemberState::suspect)) add(m.info);
  }
  return members;
}

std::vector<StageHolder> Mesh::loaded_stages() const {
  std::vector<StageHolder> loaded;
  const auto& self = membership_.self();
  if (self.layers) loaded.push_back({self.name, self.address, *self.layers});
  for (const auto& address : membership_.holders()) {
    const Member& m = *membership_.find(address);
    if (m.verified && m.state == MemberState::alive && m.info.layers) {
      loaded.push_back({m.info.name, address, *m.info.layers});
    }
  }
  return loaded;
}

Plan Mesh::compute_plan() const {
  // Suspects stay in the plan until they are declared dead: a false suspicion must not move
  // stages back and forth.
  return plan_stages(plan_members(true), config_.cost);
}

void Mesh::publish_plan(TimePoint now) {
  next_repeat_ = now + config_.plan_repeat;
  membership_.set_leadership(election_.current().term, election_.current().coordinator);
  for (const auto& address : membership_.live_addresses()) {
    if (address != membership_.self().address) outgoing_.push_back({address, plan_});
  }
}

void Mesh::tick(TimePoint now) {
  if (membership_.has_left()) return;  // gone: no more probes, claims or plans
  membership_.tick(now);
  for (auto& c : membership_.take_changes()) {
    last_change_ = now;
    changes_.push_back(std::move(c));
  }
  if (deferred_plan_ && stages_known(*deferred_plan_)) {
    const wire::PlanAnnounce plan = std::move(*deferred_plan_);
    deferred_plan_.reset();
    receive(plan, now);
  }
  if (election_.tick(now, membership_.live_addresses(), too_early_to_claim(now))) {
    last_change_ = now - config_.plan_quiet;
  }
  membership_.set_leadership(election_.current().term, election_.current().coordinator);
  if (!election_.is_coordinator()) return;

  const bool new_term = !(plan_leader_ == election_.current());
  // Planned again once the members have been quiet for plan_quiet, or have kept changing for
  // plan_wait (a thousand members forming a mesh are never quiet for long, and a coordinator that
  // waited for quiet kept its first plan, made when it knew a handful, for seconds); and not
  // again until they change.
  const bool planned_already = planned_at_change_ == last_change_;
  if (!planned_already && !unplanned_since_) unplanned_since_ = now;
  const bool due = !planned_already && (now - last_change_ >= config_.plan_quiet || now - *unplanned_since_ >= config_.plan_wait);
  if (new_term || due) {
    planned_at_change_ = last_change_;
    unplanned_since_.reset();
    const Plan plan = compute_plan();
    std::vector<wire::PlanStage> stages;
    for (const auto& s : plan.stages) stages.push_back({s.name, s.address, s.layers});
    if (new_term || stages != plan_.stages || plan.problem != plan_.problem) {
      plan_.term = election_.current().term;
      plan_.coordinator = election_.current().coordinator;
      plan_.version++;  // versions keep rising across terms: a new coordinator goes on from its own
      plan_.stages = std::move(stages);
      plan_.problem = plan.complete ? std::string() : plan.problem;
      plan_leader_ = election_.current();
      planned_ = own_stage();
      route_.reset();
      publish_plan(now);
      return;
    }
  }
  if (now >= next_repeat_) publish_plan(now);
}

// Whether the coordinator followed is still unverified here, within three sync intervals of
// asking it (each asks again): past that, or once verified, the usual rules say whether it is gone.
bool Mesh::confirming_coordinator(TimePoint now) const {
  if (!confirming_since_ || now - *confirming_since_ >= 3 * config_.membership.sync_interval) return false;
  return !membership_.verified(election_.current().coordinator);
}

// Whether this node should not claim a term yet: its coordinator is being confirmed, or it was
// started to join a mesh that has not answered (its join sync lost, say: claiming alone then
// made a second coordinator of term 1 when hundreds started at once). Either for three sync
// intervals at most: a seed that never answers leaves the node to serve on its own.
bool Mesh::too_early_to_claim(TimePoint now) const {
  if (confirming_coordinator(now)) return true;
  return membership_.joining() && now - started_ < 3 * config_.membership.sync_interval;
}

std::vector<Outgoing> Mesh::take_outgoing() {
  std::vector<Outgoing> out = membership_.take_outgoing();
  for (auto& o : outgoing_) out.push_back(std::move(o));
  outgoing_.clear();
  return out;
}

std::vector<MemberChange> Mesh::take_changes() {
  for (auto& c : membership_.take_changes()) changes_.push_back(std::move(c));
  return std::exchange(changes_, {});
}

std::optional<LayerRange> Mesh::assignment() const {
  const auto& self = membership_.self();
  return self.pinned ? self.pinned : planned_;
}

std::optional<LayerRange> Mesh::own_stage() const {
  for (const auto& s : plan_.stages) {
    if (s.address == membership_.self().address) return s.layers;
  }
  return std::nullopt;
}

const std::vector<StageHolder>& Mesh::route() const {
  if (!route_ || route_version_ != membership_.stages_version()) {
    std::vector<StageHolder> preferred;
    for (const auto& s : plan_.stages) preferred.push_back({s.node, s.address, s.layers});
    auto found = find_route(loaded_stages(), config_.cost.n_layers, preferred);
    if (!route_ || found != *route_) route_changes_++;
    route_ = std::move(found);
    route_version_ = membership_.stages_version();
  }
  return *route_;
}

std::string Mesh::route_problem() const {
  if (!route().empty()) return {};
  // The first second of a mesh: not a problem yet, and said so.
  if (plan_.version == 0 && loaded_stages().empty()) {
    return leadership().coordinator.empty() ? "starting: electing a coordinator"
                                            : "starting: waiting for the coordinator's plan";
  }
  if (!plan_.problem.empty()) return plan_.problem;
  const Plan held = cover_check(loaded_stages(), config_.cost.n_layers);
  if (!held.problem.empty()) return held.problem;
  return "the live stages do not chain into the whole model";
}

bool Mesh::could_cover() const { return plan_stages(plan_members(false), config_.cost).complete; }

std::vector<MemberView> Mesh::members() const {
  std::vector<MemberView> out;
  out.push_back({membership_.self(), MemberState::alive, true, started_});
  for (const auto& [address, m] : membership_.members()) {
    if (m.verified) out.push_back({m.info, m.state, false, m.since});
  }
  return out;
}

std::string Mesh::name_of(const std::string& address) const {
  if (address == membership_.self().address) return membership_.self().name;
  const Member* m = membership_.find(address);
  return m ? m->info.name : address;
}

}  // namespace troupe::discovery
