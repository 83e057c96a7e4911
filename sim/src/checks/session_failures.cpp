// Invariant 4, second half: a session ends with an error only while the live nodes its entry
// could reach could not cover the model under any plan.
#include "world.hpp"

namespace troupe::sim {

namespace {

class SessionFailures final : public Checker {
 public:
  using Checker::Checker;

  void session_ended(SimSession& s) override {
    if (s.outcome == SimSession::Outcome::completed || !world_.coverable_from(s.entry)) return;
    world_.violation("session " + std::to_string(s.index) + " failed while the nodes it could reach could cover the model: " + s.error);
  }
};

}  // namespace

std::unique_ptr<Checker> session_failures_checker(World& world) { return std::make_unique<SessionFailures>(world); }

}  // namespace troupe::sim
