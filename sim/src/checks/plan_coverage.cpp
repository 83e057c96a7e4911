// Invariant 3: a plan all live nodes agree on covers every layer whenever the live nodes'
// budgets could hold the model (once per plan version). Not while a partition is in force, nor
// within `converge_within` of its heal: a side that planned alone made a plan without the other
// side's layers, which the nodes may still share for a moment after the heal, until the
// coordinator has probed the members it hears of again and re-planned (a random scenario found
// two nodes agreeing on such a plan for 25 ms). Nor within `converge_within` of the moment the
// live nodes became able to hold the model (a member joined or came back): the coordinator plans
// a member once it answered a probe and the mesh was quiet for a moment (a random scenario found
// the plan of nodes too small to hold a layer agreed on 0.3 s after a laptop joined them).
#include <optional>
#include <set>

#include "world.hpp"

namespace troupe::sim {

namespace {

class PlanCoverage final : public Checker {
 public:
  using Checker::Checker;

  void periodic() override {
    const Nanos within = world_.scenario_.expect.converge_within;
    if (!world_.cuts_.empty()) last_cut_ = world_.now();
    if (!world_.coverable_from(-1)) {
      coverable_since_.reset();
      return;
    }
    if (!coverable_since_) coverable_since_ = world_.now();
    if (last_cut_ && world_.now() < *last_cut_ + within) return;
    if (world_.now() < *coverable_since_ + within) return;
    const wire::PlanAnnounce* plan = world_.agreed_plan();
    if (!plan) return;
    std::vector<discovery::StageHolder> holders;
    for (const auto& st : plan->stages) holders.push_back({st.node, st.address, st.layers});
    const discovery::Plan held = discovery::cover_check(std::move(holders), world_.model_.config.n_layers);
    if (held.complete || reported_.count(plan->version)) return;
    reported_.insert(plan->version);
    world_.violation("the agreed plan v" + std::to_string(plan->version) + " does not cover the model (" +
                     held.problem + ") though the live nodes could");
  }

 private:
  std::set<uint64_t> reported_;  // plan versions
  std::optional<Nanos> last_cut_;  // when a partition was last seen in force
  std::optional<Nanos> coverable_since_;  // since when the live nodes could hold the model
};

}  // namespace

std::unique_ptr<Checker> plan_coverage_checker(World& world) { return std::make_unique<PlanCoverage>(world); }

}  // namespace troupe::sim
