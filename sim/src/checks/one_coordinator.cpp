// Invariant 1, one coordinator per term. Terms are ballots (number, claimant): two claimants may
// hold one term number for a while (both sides of a partition elect), so three things are
// checked: a node's ballot never goes back; each ballot is coordinated by one process only; and
// two coordinators of one term number that can reach each other resolve it within kSplitGrace
// (the longest such split goes into the summary).
#include <algorithm>
#include <chrono>
#include <map>
#include <tuple>

#include "world.hpp"

namespace troupe::sim {

namespace {

// Two coordinators of one term number that can reach each other resolve by ballot order as soon
// as either hears of the other: within a probe or sync round, far less than this. Longer is a
// split brain.
constexpr Nanos kSplitGrace = 10s;

std::string ballot(const discovery::Leadership& l) {
  std::string s = "(";  // built step by step: GCC 12 warns falsely (-Wrestrict) on one expression
  s += std::to_string(l.term);
  s += ", ";
  s += l.coordinator.empty() ? std::string("none") : l.coordinator;
  s += ")";
  return s;
}

class OneCoordinator final : public Checker {
 public:
  using Checker::Checker;

  // A node's term only ever rises (ballot order), and each ballot has one coordinator: the one
  // process that claimed it. A restarted process at the same address is another claimant.
  void node_reported(SimNode& n) override {
    if (!n.mesh) return;
    const discovery::Leadership& l = n.mesh->leadership();
    if (l == n.leadership) return;
    if (!n.leadership.coordinator.empty() && !discovery::supersedes(l, n.leadership)) {
      world_.violation(n.name + " went back from term " + ballot(n.leadership) + " to " + ballot(l));
    }
    n.leadership = l;
    world_.trace("term", n.index, int64_t(l.term), l.coordinator);
    if (!n.mesh->is_coordinator()) return;
    auto [it, fresh] = ballot_holder_.emplace(std::make_pair(l.term, l.coordinator), n.instance);
    if (fresh) {
      world_.summary_.coordinator_changes++;
    } else if (it->second != n.instance) {
      world_.violation(n.name + " (instance " + std::to_string(n.instance) + ") coordinates term " + ballot(l) +
                       ", which instance " + std::to_string(it->second) + " claimed");
    }
  }

  // One coordinator per term number among nodes that can reach each other.
  void periodic() override {
    std::map<uint64_t, std::vector<int>> by_term;
    for (const auto& n : world_.nodes_) {
      if (n->life == SimNode::Life::up && n->mesh && n->mesh->is_coordinator()) by_term[n->mesh->leadership().term].push_back(n->index);
    }
    std::map<std::tuple<uint64_t, int, int>, Nanos> seen;
    for (const auto& [term, who] : by_term) {
      for (std::size_t i = 0; i < who.size(); i++) {
        for (std::size_t j = i + 1; j < who.size(); j++) {
          const int a = who[i], b = who[j];
          if (world_.blocked(a, b) || world_.blocked(b, a)) continue;
          seen[{term, a, b}] = split_since(term, a, b);
        }
      }
    }
    split_since_ = std::move(seen);
  }

 private:
  // Since when coordinators a and b of `term` have reached each other (max: reported).
  Nanos split_since(uint64_t term, int a, int b) {
    const Nanos now = world_.now();
    auto it = split_since_.find({term, a, b});
    const Nanos since = it == split_since_.end() ? now : it->second;
    if (since == Nanos::max()) return since;
    double& longest = world_.summary_.longest_split_seconds;
    longest = std::max(longest, std::chrono::duration<double>(now - since).count());
    if (now - since <= kSplitGrace) return since;
    world_.violation("two coordinators of term " + std::to_string(term) + " that reach each other: " +
                     world_.nodes_[a]->name + " and " + world_.nodes_[b]->name + " for over " +
                     std::to_string(kSplitGrace.count() / 1000000000) + " s");
    return Nanos::max();  // reported once
  }

  std::map<std::pair<uint64_t, std::string>, uint64_t> ballot_holder_;  // ballot -> instance
  std::map<std::tuple<uint64_t, int, int>, Nanos> split_since_;       // (term, a, b) -> since
};

}  // namespace

std::unique_ptr<Checker> one_coordinator_checker(World& world) { return std::make_unique<OneCoordinator>(world); }

}  // namespace troupe::sim
