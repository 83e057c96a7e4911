// Stage planning, as pure functions: which member runs which contiguous layer range
// (plan_stages, the coordinator's job), and which live stages a new session should pass through
// (find_route, every entry node's job).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "troupe/model/model.hpp"

namespace troupe::discovery {

struct StageHolder {
  std::string name;
  std::string address;
  LayerRange layers;
  bool operator==(const StageHolder&) const = default;
};

struct Plan {
  std::vector<StageHolder> stages;  // in layer order
  bool complete = false;            // the stages cover [0, n_layers) exactly once
  std::string problem;              // what is missing or doubled, when not complete
};

// What one layer range costs a member in memory, from the model's shape.
struct ModelCost {
  int n_layers = 0;
  uint64_t layer_bytes = 0;      // weights of one layer
  uint64_t kv_bytes = 0;         // KV cache of one layer, for the sessions a stage plans for
  uint64_t embedding_bytes = 0;  // the first stage's extra
  uint64_t head_bytes = 0;       // the last stage's extra (final norm and classifier)
  uint64_t overhead = 0;         // per node whose own figure is not known (runtime, scratch)
  uint64_t scratch_bytes = 0;    // a stage's working buffers, beyond its weights and caches
};
ModelCost model_cost(const ModelConfig& config, uint64_t layer_bytes, uint64_t embedding_bytes,
                     uint64_t head_bytes, int planned_sessions);

struct PlanMember {
  std::string name;
  std::string address;
  double throughput = 0;   // relative speed (GB/s of its kernels); 0 counts as the slowest
  uint64_t mem_budget = 0;  // the whole process's; 0: no limit
  uint64_t base_rss = 0;    // what the process holds with no stage (measured); 0: not known
  std::optional<LayerRange> pinned;  // --layers: kept as given
};

// The coordinator's plan. Pinned members keep their ranges; the layers no pin covers are split
// among the other members into contiguous ranges proportional to their throughput, each within
// the member's memory budget (its extra for the embedding or the head included). A member whose
// share rounds to no layer, or whose budget holds none, gets no stage; members take ranges in the
// order of their addresses, so the same members always give the same plan. When the budgets
// cannot hold the model, the plan is incomplete and `problem` says by how much.
Plan plan_stages(std::vector<PlanMember> members, const ModelCost& cost);

// The plan made of ranges that members hold already (static --layers meshes, and status).
Plan cover_check(std::vector<StageHolder> holders, int n_layers);

// A chain of `loaded` stages covering [0, n_layers) exactly, preferring the holders of
// `preferred` (the current plan) and then fewer hops; empty when none exists.
std::vector<StageHolder> find_route(const std::vector<StageHolder>& loaded, int n_layers,
                                    const std::vector<StageHolder>& preferred);

std::string format_range(LayerRange r);  // "2:5"

}  // namespace troupe::discovery
