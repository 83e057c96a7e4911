// The stage plan of a static mesh: every node says which layers it holds (--layers A:B), and the
// mesh serves once the ranges of the live nodes cover every layer exactly once. (The coordinator
// that assigns ranges itself arrives with the discovery issue; it will produce the same Plan.)
#pragma once

#include <string>
#include <vector>

#include "troupe/runtime/model.hpp"

namespace troupe {

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

// The plan from the ranges held by live nodes (in any order).
Plan make_static_plan(std::vector<StageHolder> holders, int n_layers);

std::string format_range(LayerRange r);  // "2:5"

}  // namespace troupe
