// Invariant 5: no session hangs. After `duration`, the sessions still open get `drain` to end
// (the run's last event is at most then); one still open at the end is a violation.
#include "world.hpp"

namespace troupe::sim {

namespace {

class HungSessions final : public Checker {
 public:
  using Checker::Checker;

  void run_ended() override {
    for (const auto& s : world_.sessions_) {
      if (s.outcome == SimSession::Outcome::running || s.outcome == SimSession::Outcome::waiting) {
        world_.violation("session " + std::to_string(s.index) + " hangs past the end" + (s.error.empty() ? "" : " (" + s.error + ")"));
      }
    }
  }
};

}  // namespace

std::unique_ptr<Checker> hung_sessions_checker(World& world) { return std::make_unique<HungSessions>(world); }

}  // namespace troupe::sim
