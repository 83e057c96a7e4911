#include "troupe/discovery/mesh.hpp"

#include <algorithm>
#include <utility>

namespace troupe::discovery {

using wire::MemberState;

Mesh::Mesh(wire::MemberInfo self, MeshConfig config, uint64_t seed, TimePoint now, const SimHook& hook)
    : config_(config),
      membership_(self, config.membership, seed),
      election_(self.address, config.election, now, hook),
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

void Mesh::receive(const wire::Gossip& gossip, TimePoint now) {
  if (membership_.has_left()) return;
  membership_.receive(gossip, now);
  for (auto& c : membership_.take_changes()) {
    last_change_ = now;
    changes_.push_back(std::move(c));
  }
  if (gossip.term > 0) election_.observe({gossip.term, gossip.coordinator});
}

void Mesh::receive(const wire::PlanAnnounce& plan, TimePoint now) {
  (void)now;
  if (membership_.has_left()) return;
  const Leadership from{plan.term, plan.coordinator};
  election_.observe(from);
  if (!(from == election_.current())) return;  // a plan of an earlier term
  if (from == plan_leader_ && plan.version <= plan_.version) return;
  plan_ = plan;
  plan_leader_ = from;
  planned_ = own_stage();
  route_.reset();
}

std::vector<PlanMember> Mesh::plan_members(bool with_suspects) const {
  std::vector<PlanMember> members;
  auto add = [&](const wire::MemberInfo& info) {
    members.push_back({info.name, info.address, info.throughput, info.mem_budget, info.pinned});
  };
  add(membership_.self());
  for (const auto& [address, m] : membership_.members()) {
    if (m.state == MemberState::alive || (with_suspects && m.state == MemberState::suspect)) add(m.info);
  }
  return members;
}

std::vector<StageHolder> Mesh::loaded_stages() const {
  std::vector<StageHolder> loaded;
  const auto& self = membership_.self();
  if (self.layers) loaded.push_back({self.name, self.address, *self.layers});
  for (const auto& address : membership_.holders()) {
    const Member& m = membership_.members().at(address);
    if (m.state == MemberState::alive) loaded.push_back({m.info.name, address, *m.info.layers});
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
  if (election_.tick(now, membership_.live_addresses())) last_change_ = now - config_.plan_quiet;
  membership_.set_leadership(election_.current().term, election_.current().coordinator);
  if (!election_.is_coordinator()) return;

  const bool new_term = !(plan_leader_ == election_.current());
  if (new_term || now - last_change_ >= config_.plan_quiet) {
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
    route_ = find_route(loaded_stages(), config_.cost.n_layers, preferred);
    route_version_ = membership_.stages_version();
  }
  return *route_;
}

std::string Mesh::route_problem() const {
  if (!route().empty()) return {};
  if (!plan_.problem.empty()) return plan_.problem;
  const Plan held = cover_check(loaded_stages(), config_.cost.n_layers);
  if (!held.problem.empty()) return held.problem;
  return "the live stages do not chain into the whole model";
}

bool Mesh::could_cover() const { return plan_stages(plan_members(false), config_.cost).complete; }

std::vector<MemberView> Mesh::members() const {
  std::vector<MemberView> out;
  out.push_back({membership_.self(), MemberState::alive, true});
  for (const auto& [address, m] : membership_.members()) out.push_back({m.info, m.state, false});
  return out;
}

std::string Mesh::name_of(const std::string& address) const {
  if (address == membership_.self().address) return membership_.self().name;
  auto it = membership_.members().find(address);
  return it == membership_.members().end() ? address : it->second.info.name;
}

}  // namespace troupe::discovery
