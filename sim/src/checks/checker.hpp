// An invariant of docs/sim.md, checked as the run goes: one class a file in checks/, with the
// state it needs. The world calls each checker's hooks at their moments, in the order of
// make_checkers (checker.cpp); a breach is reported with World::violation.
#pragma once

#include <memory>
#include <vector>

namespace troupe::sim {

class World;
struct SimNode;
struct SimSession;

class Checker {
 public:
  explicit Checker(World& world) : world_(world) {}
  virtual ~Checker() = default;

  virtual void node_reported(SimNode&) {}  // the node actor handled an event (its mesh: SimNode::mesh)
  virtual void disturbed() {}              // a fault began or ended
  virtual void periodic() {}               // every 100 ms of simulated time
  virtual void session_ended(SimSession&) {}  // completed or failed (SimSession::outcome)
  virtual void run_ended() {}              // after the last event

 protected:
  World& world_;
};

// The checkers (one file each), in the order their hooks run.
std::unique_ptr<Checker> one_coordinator_checker(World& world);
std::unique_ptr<Checker> session_answers_checker(World& world);
std::unique_ptr<Checker> session_failures_checker(World& world);
std::unique_ptr<Checker> hung_sessions_checker(World& world);
std::unique_ptr<Checker> convergence_checker(World& world);
std::unique_ptr<Checker> plan_coverage_checker(World& world);
std::unique_ptr<Checker> member_views_checker(World& world);
std::vector<std::unique_ptr<Checker>> make_checkers(World& world);

}  // namespace troupe::sim
