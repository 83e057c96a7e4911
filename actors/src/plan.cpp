#include "troupe/actors/plan.hpp"

#include <algorithm>

namespace troupe {

std::string format_range(LayerRange r) {
  return std::to_string(r.begin) + ":" + std::to_string(r.end);
}

Plan make_static_plan(std::vector<StageHolder> holders, int n_layers) {
  std::sort(holders.begin(), holders.end(), [](const StageHolder& a, const StageHolder& b) {
    return a.layers.begin != b.layers.begin ? a.layers.begin < b.layers.begin
                                            : a.name < b.name;
  });
  std::vector<std::string> missing, doubled;
  int covered = 0;  // every layer below this is held
  for (std::size_t i = 0; i < holders.size(); i++) {
    const StageHolder& h = holders[i];
    if (h.layers.begin > covered) missing.push_back(format_range({covered, h.layers.begin}));
    if (h.layers.begin < covered) {
      // Overlaps an earlier range: name both holders.
      for (std::size_t j = 0; j < i; j++) {
        const LayerRange a = holders[j].layers;
        const LayerRange both{std::max(a.begin, h.layers.begin), std::min(a.end, h.layers.end)};
        if (both.begin < both.end) {
          doubled.push_back(format_range(both) + " (" + holders[j].name + " and " + h.name + ")");
        }
      }
    }
    covered = std::max(covered, h.layers.end);
  }
  if (covered < n_layers) missing.push_back(format_range({covered, n_layers}));

  Plan plan;
  plan.stages = std::move(holders);
  plan.complete = missing.empty() && doubled.empty();
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  if (!missing.empty()) plan.problem = "layers " + join(missing) + " are held by no live node";
  if (!doubled.empty()) {
    plan.problem += (plan.problem.empty() ? "" : "; ") + std::string("layers ") + join(doubled) +
                    " are held twice";
  }
  return plan;
}

}  // namespace troupe
