// The invariants (docs/sim.md), checked as the run goes.
#include <algorithm>

#include "world.hpp"

namespace troupe::sim {

namespace {

// Two coordinators of one term number that can reach each other resolve by ballot order as soon
// as either hears of the other: within a probe or sync round, far less than this. Longer is a
// split brain.
constexpr Nanos kSplitGrace = 10s;
constexpr int kViolationsKept = 50;

std::string ballot(const discovery::Leadership& l) {
  std::string s = "(";  // built step by step: GCC 12 warns falsely (-Wrestrict) on one expression
  s += std::to_string(l.term);
  s += ", ";
  s += l.coordinator.empty() ? std::string("none") : l.coordinator;
  s += ")";
  return s;
}

}  // namespace

void World::violation(const std::string& what) {
  violations_total_++;
  char t[32];
  std::snprintf(t, sizeof t, "t=%.3fs: ", double(now_.count()) / 1e9);
  trace("violation", violations_total_, 0, what);
  if (int(summary_.violations.size()) < kViolationsKept) summary_.violations.push_back(t + what);
}

void World::disturbed() {
  last_disturbance_ = now_;
  disturbance_open_ = true;
}

// A node's term only ever rises (ballot order), and each ballot has one coordinator: the one
// process that claimed it. A restarted process at the same address is another claimant.
void World::check_leadership(SimNode& n) {
  if (!n.mesh) return;
  const discovery::Leadership& l = n.mesh->leadership();
  if (l == n.leadership) return;
  if (!n.leadership.coordinator.empty() && !discovery::supersedes(l, n.leadership)) {
    violation(n.name + " went back from term " + ballot(n.leadership) + " to " + ballot(l));
  }
  n.leadership = l;
  trace("term", n.index, int64_t(l.term), l.coordinator);
  if (!n.mesh->is_coordinator()) return;
  auto [it, fresh] = ballot_holder_.emplace(std::make_pair(l.term, l.coordinator), n.instance);
  if (fresh) {
    summary_.coordinator_changes++;
  } else if (it->second != n.instance) {
    violation(n.name + " (instance " + std::to_string(n.instance) + ") coordinates term " + ballot(l) +
              ", which instance " + std::to_string(it->second) + " claimed");
  }
}

bool World::coverable_from(int from) const {
  std::vector<discovery::PlanMember> members;
  for (const auto& n : nodes_) {
    if (n->life != SimNode::Life::up) continue;
    if (from >= 0 && n->index != from && (blocked(from, n->index) || blocked(n->index, from))) continue;
    members.push_back({n->name, n->address, n->profile->throughput(), n->profile->mem_budget(), std::nullopt});
  }
  return discovery::plan_stages(std::move(members), model_.cost).complete;
}

void World::check_periodic() {
  // One coordinator per term number among nodes that can reach each other (see kSplitGrace).
  std::map<uint64_t, std::vector<int>> by_term;
  for (const auto& n : nodes_) {
    if (n->life == SimNode::Life::up && n->mesh && n->mesh->is_coordinator()) by_term[n->mesh->leadership().term].push_back(n->index);
  }
  std::map<std::tuple<uint64_t, int, int>, Nanos> seen;
  for (const auto& [term, who] : by_term) {
    for (std::size_t i = 0; i < who.size(); i++) {
      for (std::size_t j = i + 1; j < who.size(); j++) {
        const int a = who[i], b = who[j];
        if (blocked(a, b) || blocked(b, a)) continue;
        const auto key = std::make_tuple(term, a, b);
        auto it = split_since_.find(key);
        Nanos since = it == split_since_.end() ? now_ : it->second;
        if (since != Nanos::max() && now_ - since > kSplitGrace) {
          violation("two coordinators of term " + std::to_string(term) + " that reach each other: " +
                    nodes_[a]->name + " and " + nodes_[b]->name + " for over " +
                    std::to_string(kSplitGrace.count() / 1000000000) + " s");
          since = Nanos::max();  // reported once
        }
        seen[key] = since;
      }
    }
  }
  split_since_ = std::move(seen);

  // Agreement: every live node follows the same plan, made by a live coordinator, naming live
  // nodes only.
  const wire::PlanAnnounce* plan = nullptr;
  bool agree = true;
  for (const auto& n : nodes_) {
    if (n->life != SimNode::Life::up) continue;
    if (!n->mesh) {  // not heard from yet
      agree = false;
      break;
    }
    const wire::PlanAnnounce& p = n->mesh->plan();
    if (!plan) {
      plan = &p;
    } else if (p.version != plan->version || p.term != plan->term || p.coordinator != plan->coordinator) {
      agree = false;
      break;
    }
  }
  if (!plan || plan->version == 0) agree = false;
  if (agree) {
    auto live = [&](const std::string& address) {
      auto it = by_address_.find(address);
      return it != by_address_.end() && up(it->second);
    };
    agree = live(plan->coordinator);
    for (const auto& st : plan->stages) agree = agree && live(st.address);
  }
  if (!agree) {
    agreed_since_.reset();
    return;
  }
  if (!agreed_since_) agreed_since_ = now_;
  if (!formed_) {
    formed_ = true;
    disturbance_open_ = false;
    summary_.initial_convergence_seconds = double(now_.count()) / 1e9;
  } else if (disturbance_open_) {
    disturbance_open_ = false;
    summary_.worst_convergence_seconds =
        std::max(summary_.worst_convergence_seconds, double((now_ - last_disturbance_).count()) / 1e9);
  }
  // A plan all agree on covers every layer whenever the live nodes could.
  const discovery::Plan held = discovery::cover_check(
      [&] {
        std::vector<discovery::StageHolder> v;
        for (const auto& st : plan->stages) v.push_back({st.node, st.address, st.layers});
        return v;
      }(),
      model_.config.n_layers);
  if (!held.complete && cuts_.empty() && !incomplete_reported_.count(plan->version) && coverable_from(-1)) {
    incomplete_reported_.insert(plan->version);
    violation("the agreed plan v" + std::to_string(plan->version) + " does not cover the model (" +
              held.problem + ") though the live nodes could");
  }
}

void World::check_session_end(SimSession& s) {
  if (s.outcome == SimSession::Outcome::completed) {
    if (s.text != s.reference) {
      std::size_t k = 0;
      while (k < s.text.size() && k < s.reference.size() && s.text[k] == s.reference[k]) k++;
      violation("session " + std::to_string(s.index) + " answered differently from one machine, from byte " +
                std::to_string(k) + " of " + std::to_string(s.reference.size()));
    }
    return;
  }
  if (coverable_from(s.entry)) {
    violation("session " + std::to_string(s.index) + " failed while the nodes it could reach could cover the model: " + s.error);
  }
}

void World::check_final() {
  for (auto& s : sessions_) {
    if (s.outcome == SimSession::Outcome::running || s.outcome == SimSession::Outcome::waiting) {
      violation("session " + std::to_string(s.index) + " hangs past the end" + (s.error.empty() ? "" : " (" + s.error + ")"));
    }
  }
  bool anyone = false;
  for (const auto& n : nodes_) anyone |= n->life == SimNode::Life::up;
  if (!anyone) return;
  const Nanos within = scenario_.expect.converge_within;
  if (!agreed_since_) {
    violation("the live members do not agree on one plan at the end");
  } else if (*agreed_since_ > last_disturbance_ + within) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "the live members agreed on one plan %.1f s after the last fault, not within %.1f s",
                  double((*agreed_since_ - last_disturbance_).count()) / 1e9, double(within.count()) / 1e9);
    violation(buf);
  }
}

}  // namespace troupe::sim
