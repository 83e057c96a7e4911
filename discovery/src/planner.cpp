#include "troupe/discovery/planner.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

namespace troupe::discovery {

std::string format_range(LayerRange r) {
  return std::to_string(r.begin) + ":" + std::to_string(r.end);
}

ModelCost model_cost(const ModelConfig& config, uint64_t layer_bytes, uint64_t embedding_bytes,
                     uint64_t head_bytes, int planned_sessions) {
  ModelCost c;
  c.n_layers = config.n_layers;
  c.layer_bytes = layer_bytes;
  // Keys and values of one layer for a full context, in f32, per planned session.
  c.kv_bytes = uint64_t(2) * config.seq_len * config.kv_dim() * 4 * std::max(planned_sessions, 1);
  c.embedding_bytes = embedding_bytes;
  c.head_bytes = head_bytes;
  c.overhead = uint64_t(16) << 20;
  return c;
}

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// How many layers a member's budget holds, with the extras it would carry (0 budget: unknown,
// no limit). The budget is the whole process's: what the member measured itself holding with no
// stage (or, from a member that does not say, the fixed overhead) comes off first.
int capacity(const PlanMember& m, const ModelCost& cost, bool first, bool last) {
  if (m.mem_budget == 0) return cost.n_layers;
  // Each step is checked before it subtracts: a member's figures are its own word.
  const uint64_t own = m.base_rss ? m.base_rss : cost.overhead;
  if (m.mem_budget <= own) return 0;
  const uint64_t left = m.mem_budget - own;
  const uint64_t extra = (m.base_rss ? cost.scratch_bytes : 0) + (first ? cost.embedding_bytes : 0) +
                         (last ? cost.head_bytes : 0);
  if (left <= extra) return 0;
  const uint64_t per_layer = std::max<uint64_t>(cost.layer_bytes + cost.kv_bytes, 1);
  return static_cast<int>(std::min<uint64_t>((left - extra) / per_layer, cost.n_layers));
}

// Integer shares of `total` proportional to `weight`, none over its cap (water-filling, then
// largest remainders). Sums to min(total, sum of caps).
std::vector<int> proportional_shares(const std::vector<double>& weight, const std::vector<int>& cap,
                                     int total) {
  const std::size_t n = weight.size();
  std::vector<double> ideal(n, 0.0);
  std::vector<bool> fixed(n, false);
  double remaining = total;
  for (bool changed = true; changed;) {
    changed = false;
    double sum = 0;
    for (std::size_t i = 0; i < n; i++) {
      if (!fixed[i] && cap[i] > 0) sum += weight[i];
    }
    if (sum <= 0) break;
    for (std::size_t i = 0; i < n; i++) {
      if (fixed[i] || cap[i] <= 0) continue;
      ideal[i] = remaining * weight[i] / sum;
      if (ideal[i] >= cap[i]) {
        ideal[i] = cap[i];
        fixed[i] = true;
        remaining -= cap[i];
        changed = true;
      }
    }
  }
  std::vector<int> share(n, 0);
  int given = 0;
  for (std::size_t i = 0; i < n; i++) {
    share[i] = std::min(cap[i], static_cast<int>(std::floor(ideal[i] + 1e-9)));
    given += share[i];
  }
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return ideal[a] - share[a] > ideal[b] - share[b];
  });
  const int target = std::min(total, std::accumulate(cap.begin(), cap.end(), 0,
                                                     [](int a, int c) { return a + std::max(c, 0); }));
  while (given < target) {
    bool gave = false;
    for (std::size_t i : order) {
      if (given < target && share[i] < cap[i]) {
        share[i]++;
        given++;
        gave = true;
      }
    }
    if (!gave) break;
  }
  return share;
}

std::vector<LayerRange> uncovered(const std::vector<LayerRange>& held, int n_layers) {
  std::vector<LayerRange> sorted = held;
  std::sort(sorted.begin(), sorted.end(),
            [](LayerRange a, LayerRange b) { return a.begin < b.begin; });
  std::vector<LayerRange> gaps;
  int covered = 0;
  for (const auto& r : sorted) {
    if (r.begin > covered) gaps.push_back({covered, std::min(r.begin, n_layers)});
    covered = std::max(covered, r.end);
  }
  if (covered < n_layers) gaps.push_back({covered, n_layers});
  return gaps;
}

}  // namespace

Plan cover_check(std::vector<StageHolder> holders, int n_layers) {
  std::sort(holders.begin(), holders.end(), [](const StageHolder& a, const StageHolder& b) {
    return a.layers.begin != b.layers.begin ? a.layers.begin < b.layers.begin : a.address < b.address;
  });
  std::vector<std::string> missing, doubled, outside;
  std::vector<LayerRange> ranges;
  for (const auto& h : holders) ranges.push_back(h.layers);
  for (const auto& gap : uncovered(ranges, n_layers)) missing.push_back(format_range(gap));
  for (std::size_t i = 0; i < holders.size(); i++) {
    for (std::size_t j = 0; j < i; j++) {
      const LayerRange a = holders[j].layers, b = holders[i].layers;
      const LayerRange both{std::max(a.begin, b.begin), std::min(a.end, b.end)};
      if (both.begin < both.end) {
        doubled.push_back(format_range(both) + " (" + holders[j].name + " and " + holders[i].name + ")");
      }
    }
  }
  for (const auto& h : holders) {
    if (h.layers.end > n_layers) outside.push_back(format_range(h.layers) + " (" + h.name + ")");
  }
  Plan plan;
  plan.stages = std::move(holders);
  plan.complete = missing.empty() && doubled.empty() && outside.empty();
  auto add = [&](const std::vector<std::string>& what, const std::string& why) {
    if (what.empty()) return;
    plan.problem += (plan.problem.empty() ? "" : "; ") + std::string("layers ") + join(what) + why;
  };
  add(missing, " are held by no live node");
  add(doubled, " are held twice");
  add(outside, " are outside the model's " + std::to_string(n_layers));
  return plan;
}

Plan plan_stages(std::vector<PlanMember> members, const ModelCost& cost) {
  std::sort(members.begin(), members.end(),
            [](const PlanMember& a, const PlanMember& b) { return a.address < b.address; });
  std::vector<StageHolder> stages;
  std::vector<LayerRange> pinned;
  std::vector<std::size_t> free;  // members the planner may give a range
  for (std::size_t i = 0; i < members.size(); i++) {
    if (members[i].pinned) {
      stages.push_back({members[i].name, members[i].address, *members[i].pinned});
      pinned.push_back(*members[i].pinned);
    } else {
      free.push_back(i);
    }
  }
  const std::vector<LayerRange> gaps = uncovered(pinned, cost.n_layers);
  int gap_layers = 0;
  for (const auto& g : gaps) gap_layers += g.size();

  // Shares, then ranges walked in address order; the first and last holders' budgets carry the
  // embedding and the head, which can shrink their shares, so the walk is repeated until every
  // holder of an end had its share sized for it. A member once found at an end stays charged for
  // it (the charges only grow, so this ends, and the last walk fits every budget it was sized by).
  std::vector<bool> first(members.size(), false), last(members.size(), false);
  std::vector<StageHolder> assigned;
  int placed = 0;
  for (std::size_t round = 0; round <= 2 * members.size() && !gaps.empty(); round++) {
    std::vector<double> weight;
    std::vector<int> cap;
    for (std::size_t i : free) {
      weight.push_back(std::max(members[i].throughput, 1e-3));
      cap.push_back(capacity(members[i], cost, first[i], last[i]));
    }
    const std::vector<int> share = proportional_shares(weight, cap, gap_layers);
    assigned.clear();
    placed = 0;
    std::vector<bool> now_first(members.size(), false), now_last(members.size(), false);
    std::size_t k = 0;
    for (const auto& gap : gaps) {
      int at = gap.begin;
      while (at < gap.end && k < free.size()) {
        const std::size_t i = free[k];
        const int take = std::min(share[k], gap.end - at);
        k++;
        if (take <= 0) continue;
        assigned.push_back({members[i].name, members[i].address, {at, at + take}});
        if (at == 0) now_first[i] = true;
        if (at + take == cost.n_layers) now_last[i] = true;
        at += take;
        placed += take;
      }
    }
    bool charged = true;
    for (std::size_t i = 0; i < members.size(); i++) {
      charged = charged && (first[i] || !now_first[i]) && (last[i] || !now_last[i]);
      first[i] = first[i] || now_first[i];
      last[i] = last[i] || now_last[i];
    }
    if (charged) break;
  }
  for (auto& a : assigned) stages.push_back(std::move(a));
  Plan plan = cover_check(std::move(stages), cost.n_layers);
  if (!plan.complete && placed < gap_layers && pinned.empty()) {
    plan.problem = "the members' memory budgets hold " + std::to_string(placed) + " of the " +
                   std::to_string(cost.n_layers) + " layers";
  }
  return plan;
}

std::vector<StageHolder> find_route(const std::vector<StageHolder>& loaded, int n_layers,
                                    const std::vector<StageHolder>& preferred) {
  // Candidates for each starting layer, best first: a stage of the plan, then the longest range,
  // then the address (deterministic).
  // (Whether each is in the plan is looked up once: a thousand-member mesh finds routes often.)
  struct Candidate {
    bool in_plan;
    const StageHolder* stage;
  };
  std::vector<Candidate> ranked;
  ranked.reserve(loaded.size());
  for (const auto& s : loaded) ranked.push_back({std::find(preferred.begin(), preferred.end(), s) != preferred.end(), &s});
  std::sort(ranked.begin(), ranked.end(), [](const Candidate& a, const Candidate& b) {
    if (a.in_plan != b.in_plan) return a.in_plan;
    if (a.stage->layers.size() != b.stage->layers.size()) return a.stage->layers.size() > b.stage->layers.size();
    return a.stage->address < b.stage->address;
  });
  std::vector<StageHolder> order;
  order.reserve(ranked.size());
  for (const auto& c : ranked) order.push_back(*c.stage);
  std::vector<bool> dead_end(std::size_t(std::max(n_layers, 0)) + 1, false);
  std::vector<StageHolder> route;
  std::function<bool(int)> extend = [&](int at) {
    if (at == n_layers) return true;
    if (dead_end[at]) return false;
    for (const auto& s : order) {
      if (s.layers.begin != at || s.layers.end > n_layers || s.layers.end <= at) continue;
      route.push_back(s);
      if (extend(s.layers.end)) return true;
      route.pop_back();
    }
    dead_end[at] = true;
    return false;
  };
  if (n_layers <= 0 || !extend(0)) return {};
  return route;
}

}  // namespace troupe::discovery
