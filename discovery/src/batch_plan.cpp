#include "troupe/discovery/batch_plan.hpp"

#include <algorithm>

namespace troupe::discovery {

std::vector<PassTake> plan_pass(std::span<const ReadyRows> ready, int budget) {
  std::vector<PassTake> takes;
  int rows = 0;
  for (const bool decode : {true, false}) {
    for (std::size_t i = 0; i < ready.size() && rows < budget; i++) {
      if (ready[i].decode != decode || ready[i].rows < 1) continue;
      const int n = std::min(ready[i].rows, budget - rows);
      takes.push_back({i, n});
      rows += n;
    }
  }
  return takes;
}

}  // namespace troupe::discovery
