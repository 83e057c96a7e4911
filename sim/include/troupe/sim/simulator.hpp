// The deterministic network simulator (docs/sim.md). Every node runs troupe's real actors
// (actors::NodeActors) on CAF's deterministic scheduler and a virtual clock; links, devices, the
// model, clients and faults are simulated; the invariants are checked as the run goes. The same
// scenario and seed give the same run, event for event, on any machine.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "troupe/discovery/sim_hook.hpp"
#include "troupe/sim/scenario.hpp"

namespace troupe::sim {

struct Summary {
  uint64_t seed = 0;
  uint64_t events = 0;
  double sim_seconds = 0;
  double wall_seconds = 0;
  int nodes = 0;               // that ever existed
  int sessions = 0;
  int sessions_completed = 0;
  int sessions_failed = 0;
  std::vector<std::string> violations;
  double initial_convergence_seconds = -1;  // from the start to the first agreement; -1: never
  double worst_convergence_seconds = 0;     // the longest from a fault to agreement again
  int coordinator_changes = 0;              // terms claimed, the first included
  double longest_split_seconds = 0;         // two coordinators of one term reaching each other, the longest
  uint64_t frames = 0;                      // sent between nodes, control and data
  uint64_t frames_lost = 0;
  // Stage work, over every node's life: positions run through a stage's layers, sessions
  // resumed on a new route, and positions those kept rather than ran again.
  uint64_t stage_positions = 0;
  uint64_t sessions_resumed = 0;
  uint64_t positions_kept = 0;
  std::string trace_hash;                   // 16 hex digits

  bool ok() const { return violations.empty(); }
};

struct Options {
  std::string trace_path;  // when not empty: every event as one line of text
  // Deliberately broken variants of the protocol that every node runs (discovery::SimHook), for
  // the tests that prove the checks catch them; nothing in the scenario files reaches them.
  std::set<discovery::BrokenVariant> broken_variants;
};

// Runs the scenario with `seed` in place of its own.
Summary simulate(const Scenario& scenario, uint64_t seed, const Options& options = {});

}  // namespace troupe::sim
