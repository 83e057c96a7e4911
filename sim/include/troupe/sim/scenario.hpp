// A simulation scenario (docs/sim.md): the devices, the network, the workload, and the faults
// with their times. Read from YAML; everything random in a run comes from `seed`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "troupe/sim/compute.hpp"

namespace troupe::sim {

struct NodeGroup {
  int count = 1;
  std::string profile;
};

// How every link behaves unless a fault says otherwise.
struct LinkSpec {
  Nanos latency{std::chrono::milliseconds(1)};
  Nanos jitter{0};
  double bandwidth = 1e9 / 8;  // bytes/s (1 Gbit)
  double loss = 0;             // fractions, 0..1
  double duplicate = 0;
  double reorder = 0;
};

struct Workload {
  int sessions = 0;
  int prompt_tokens = 16;
  int gen_tokens = 32;
  Nanos first{std::chrono::seconds(10)};  // "every D from F"
  Nanos every{std::chrono::seconds(10)};
};

struct Fault {
  enum class Kind { crash, restart, leave, join, partition, loss, latency, bandwidth, skew };
  Kind kind = Kind::crash;
  Nanos at{0};
  std::string where;             // "faults[3]", for messages
  int count = 0;                 // crash/leave/join: how many (random ones for crash and leave)
  std::vector<int> nodes;        // crash/leave/restart/skew: these node indices; loss/latency/
                                 // bandwidth: only links to or from them (none: every link)
  bool crashed = false;          // restart: every node crashed so far and still down
  std::string profile;           // join
  std::vector<int> side_a, side_b;  // partition
  bool b_is_rest = false;        // partition: side b is every node not in side a
  bool one_way = false;          // partition: only frames from a to b are lost
  std::optional<Nanos> until;    // partition (heal_at), loss, latency, bandwidth
  double value = 0;              // loss: fraction; bandwidth: bytes/s
  Nanos duration{0};             // latency, skew
  Nanos over{0};                 // skew: drifts by `duration` over this long (0: jumps)
};

struct Expect {
  Nanos converge_within{std::chrono::seconds(30)};
  // After `duration`, sessions still running get this long to end before they count as hung.
  Nanos drain{std::chrono::seconds(300)};
};

struct Scenario {
  std::string file;
  uint64_t seed = 1;
  Nanos duration{std::chrono::seconds(60)};
  ModelSpec model;
  std::vector<NodeGroup> nodes;
  LinkSpec network;
  Workload workload;
  std::vector<Fault> faults;  // in time order
  Expect expect;
};

// Reads and checks a scenario; InputError "FILE: KEY: what is wrong" for anything unusable.
Scenario load_scenario(const std::string& path);
Scenario parse_scenario(const std::string& yaml_text, const std::string& name);

}  // namespace troupe::sim
