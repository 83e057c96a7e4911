// Invariant 3: a plan all live nodes agree on covers every layer whenever the live nodes'
// budgets could hold the model (checked while no partition is in force; once per plan version).
#include <set>

#include "world.hpp"

namespace troupe::sim {

namespace {

class PlanCoverage final : public Checker {
 public:
  using Checker::Checker;

  void periodic() override {
    const wire::PlanAnnounce* plan = world_.agreed_plan();
    if (!plan) return;
    std::vector<discovery::StageHolder> holders;
    for (const auto& st : plan->stages) holders.push_back({st.node, st.address, st.layers});
    const discovery::Plan held = discovery::cover_check(std::move(holders), world_.model_.config.n_layers);
    if (held.complete || !world_.cuts_.empty() || reported_.count(plan->version) || !world_.coverable_from(-1)) return;
    reported_.insert(plan->version);
    world_.violation("the agreed plan v" + std::to_string(plan->version) + " does not cover the model (" +
                     held.problem + ") though the live nodes could");
  }

 private:
  std::set<uint64_t> reported_;  // plan versions
};

}  // namespace

std::unique_ptr<Checker> plan_coverage_checker(World& world) { return std::make_unique<PlanCoverage>(world); }

}  // namespace troupe::sim
