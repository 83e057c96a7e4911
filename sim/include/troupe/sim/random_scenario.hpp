// Scenarios generated from a seed alone (`troupe sim --random`, docs/sim.md "Random scenarios"):
// devices, network, workload and a fault schedule, written as the scenario language so that any
// of them, and any smaller variant the shrinker makes of a failing one, replays with `troupe sim
// FILE`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "troupe/sim/scenario.hpp"
#include "troupe/sim/simulator.hpp"

namespace troupe::sim {

// One fault of a generated scenario: enough structure for the shrinker to drop it, or to drop the
// nodes it names.
struct RandomFault {
  enum class Kind { crash, restart, leave, join, partition, loss, latency, bandwidth, skew };
  Kind kind = Kind::crash;
  int at_s = 0;
  int until_s = 0;         // the end of a partition or a link fault; 0: none
  int count = 0;           // crash, leave, join
  std::string value;       // join's profile; loss "12%", latency "150ms", bandwidth "2Mbit", skew "-800ms"
  std::vector<int> nodes;  // partition's first side, skew's and (when not empty) a link fault's nodes
  int over_s = 0;          // a skew that drifts over this long; 0: jumps
  bool one_way = false;    // partition
};

struct RandomNetwork {
  int latency_us = 1000, jitter_us = 0, bandwidth_mbit = 1000;
  double loss_pct = 0, duplicate_pct = 0, reorder_pct = 0;
};

struct RandomScenario {
  uint64_t seed = 0;
  int duration_s = 0;
  ModelSpec model;
  std::vector<NodeGroup> nodes;
  RandomNetwork network;
  int sessions = 0, prompt_tokens = 0, gen_tokens = 0, first_s = 0, every_s = 0;
  std::vector<RandomFault> faults;  // in time order
  int converge_within_s = 30;
  std::string origin;               // a comment for the file's head: where it came from

  int initial_nodes() const;
  std::string yaml() const;          // the scenario language; parse_scenario reads it back
  Scenario scenario() const;         // parse_scenario(yaml())
};

// The scenario of `seed` with `nodes` devices at the start (joins add more). The same seed and
// count give the same scenario on every machine.
RandomScenario random_scenario(uint64_t seed, int nodes);

// Shrinking a failing scenario: the smallest variant found (fewer faults, nodes, sessions,
// tokens, a quieter network, a shorter run) that still breaks an invariant with the same seed,
// trying at most `max_runs` variants. `progress` hears of each smaller variant that still fails.
struct Shrunk {
  RandomScenario scenario;
  Summary summary;  // of its run
  int runs = 0;     // variants tried
};
Shrunk shrink(const RandomScenario& failing, int max_runs, const Options& options = {},
              const std::function<void(const RandomScenario&)>& progress = {});

}  // namespace troupe::sim
