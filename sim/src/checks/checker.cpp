// The checkers' list and hooks, the violations they report, and what they ask of the world.
#include "checks/checker.hpp"

#include <cstdio>

#include "world.hpp"

namespace troupe::sim {

namespace {

constexpr int kViolationsKept = 50;

}  // namespace

// The order matters where two checkers share a hook: it is the order of their violations (the
// periodic split-brain check before the plan's coverage, the hung sessions before the final
// convergence).
std::vector<std::unique_ptr<Checker>> make_checkers(World& world) {
  std::vector<std::unique_ptr<Checker>> out;
  out.push_back(one_coordinator_checker(world));
  out.push_back(session_answers_checker(world));
  out.push_back(session_failures_checker(world));
  out.push_back(hung_sessions_checker(world));
  out.push_back(convergence_checker(world));
  out.push_back(plan_coverage_checker(world));
  out.push_back(member_views_checker(world));
  return out;
}

void World::check_leadership(SimNode& n) {
  for (auto& c : checkers_) c->node_reported(n);
}

void World::check_periodic() {
  for (auto& c : checkers_) c->periodic();
}

void World::check_session_end(SimSession& s) {
  for (auto& c : checkers_) c->session_ended(s);
}

void World::check_final() {
  for (auto& c : checkers_) c->run_ended();
}

void World::disturbed() {
  for (auto& c : checkers_) c->disturbed();
}

void World::violation(const std::string& what) {
  violations_total_++;
  char t[32];
  std::snprintf(t, sizeof t, "t=%.3fs: ", double(now_.count()) / 1e9);
  trace("violation", violations_total_, 0, what);
  if (int(summary_.violations.size()) < kViolationsKept) summary_.violations.push_back(t + what);
}

bool World::coverable_from(int from) const {
  std::vector<discovery::PlanMember> members;
  for (const auto& n : nodes_) {
    if (n->life != SimNode::Life::up) continue;
    if (from >= 0 && n->index != from && (blocked(from, n->index) || blocked(n->index, from))) continue;
    members.push_back({n->name, n->address, n->profile->throughput(), n->profile->mem_budget(), 0, std::nullopt});
  }
  return discovery::plan_stages(std::move(members), model_.cost).complete;
}

// Agreement: every live node follows the same plan (term, coordinator and version), made by a
// live coordinator, naming live nodes only.
const wire::PlanAnnounce* World::agreed_plan() const {
  const wire::PlanAnnounce* plan = nullptr;
  for (const auto& n : nodes_) {
    if (n->life != SimNode::Life::up) continue;
    if (!n->mesh) return nullptr;  // not heard from yet
    const wire::PlanAnnounce& p = n->mesh->plan();
    if (!plan) {
      plan = &p;
    } else if (p.version != plan->version || p.term != plan->term || p.coordinator != plan->coordinator) {
      return nullptr;
    }
  }
  if (!plan || plan->version == 0) return nullptr;
  auto live = [&](const std::string& address) {
    auto it = by_address_.find(address);
    return it != by_address_.end() && up(it->second);
  };
  if (!live(plan->coordinator)) return nullptr;
  for (const auto& st : plan->stages) {
    if (!live(st.address)) return nullptr;
  }
  return plan;
}

}  // namespace troupe::sim
