// A simulation scenario (docs/sim.md): the devices, the network, the workload, and the faults
// with their times. Read from YAML; everything random in a run comes from `seed`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
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

// The fault kinds, one struct each, with only what that kind needs. Each struct's `key` is its
// YAML key; sim/src/faults.cpp reads, applies and ends each kind (docs/sim.md: "Add a fault kind").
// Node indices count from 0 in the order the nodes exist (joins add to the end).

// Which nodes a crash or a leave stops: `count` random live ones (from the seed), or `nodes`.
struct PickedNodes {
  int count = 0;
  std::vector<int> nodes;  // when not empty: these, and `count` is not used
};

struct Crash {
  static constexpr const char* key = "crash";
  PickedNodes who;
};

struct Restart {
  static constexpr const char* key = "restart";
  bool crashed = false;    // every node crashed so far and still down
  std::vector<int> nodes;  // or these (crashed first if running)
};

struct Leave {
  static constexpr const char* key = "leave";
  PickedNodes who;
};

struct Join {
  static constexpr const char* key = "join";
  int count = 0;
  std::string profile;
};

struct Partition {
  static constexpr const char* key = "partition";
  std::vector<int> side_a, side_b;
  bool b_is_rest = false;  // side b is every node not in side a
  bool one_way = false;    // only frames from a to b are lost
};

// Link faults: `nodes` not empty: only the links to or from these nodes.
struct Loss {
  static constexpr const char* key = "loss";
  double fraction = 0;
  std::vector<int> nodes;
};

struct Latency {
  static constexpr const char* key = "latency";
  Nanos latency{0};
  std::vector<int> nodes;
};

struct Bandwidth {
  static constexpr const char* key = "bandwidth";
  double bytes_per_second = 0;
  std::vector<int> nodes;
};

struct Skew {
  static constexpr const char* key = "skew";
  Nanos by{0};             // negative: back
  Nanos over{0};           // drifts by `by` evenly over this long; 0: jumps at once
  std::vector<int> nodes;
};

// The order here is the order of the kinds in messages ("no fault (crash, restart, ...)").
using FaultKind = std::variant<Crash, Restart, Leave, Join, Partition, Loss, Latency, Bandwidth, Skew>;

struct Fault {
  Nanos at{0};
  std::optional<Nanos> until;  // when it ends (a partition's heal_at, a link fault's until); none: never
  std::string where;           // "faults[3]", for messages
  FaultKind what;
};

struct Expect {
  Nanos converge_within{std::chrono::seconds(30)};
  // After `duration`, sessions still running get this long to end before they count as hung.
  Nanos drain{std::chrono::seconds(300)};
};

// How the nodes of `nodes` join when they start (all within a mesh tick of the first): through
// the first node, or each through a random node listed before it (which may not have started
// yet: it retries), as devices given one another's addresses at once would.
enum class StartJoin { first, random_earlier };

struct Scenario {
  std::string file;
  uint64_t seed = 1;
  Nanos duration{std::chrono::seconds(60)};
  ModelSpec model;
  std::vector<NodeGroup> nodes;
  StartJoin join = StartJoin::first;
  LinkSpec network;
  Workload workload;
  std::vector<Fault> faults;  // in time order
  Expect expect;
};

// Reads and checks a scenario; InputError "FILE: KEY: what is wrong" for anything unusable.
Scenario load_scenario(const std::string& path);
Scenario parse_scenario(const std::string& yaml_text, const std::string& name);

}  // namespace troupe::sim
