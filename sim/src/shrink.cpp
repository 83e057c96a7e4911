// Shrinking a failing generated scenario (random_scenario.hpp): greedy, as property-based testing
// does. Each round tries smaller variants in a fixed order — a fault fewer, fewer nodes, fewer
// sessions and tokens, a quiet network, a shorter run — and keeps the first that still breaks an
// invariant; it stops when no variant does, or after `max_runs` runs. Deterministic: the same
// failing scenario shrinks to the same file.
#include <algorithm>

#include "troupe/model/error.hpp"
#include "troupe/sim/random_scenario.hpp"

namespace troupe::sim {

namespace {

// Removes `n` of the nodes that exist from the start, from index `first` (of group `group`): the
// indices faults name above them shift down, those among them go, and a fault left naming nobody
// goes with them.
RandomScenario without_nodes(RandomScenario s, std::size_t group, int first, int n) {
  s.nodes[group].count -= n;
  if (s.nodes[group].count == 0) s.nodes.erase(s.nodes.begin() + long(group));
  std::vector<RandomFault> kept;
  for (RandomFault f : s.faults) {
    const bool named = !f.nodes.empty();
    std::vector<int> left;
    for (int i : f.nodes) {
      if (i < first) left.push_back(i);
      if (i >= first + n) left.push_back(i - n);
    }
    f.nodes = left;
    if (!named || !left.empty()) kept.push_back(f);
  }
  s.faults = kept;
  return s;
}

// The shortest run that still holds every fault and the time after the last one to settle.
int shortest_duration(const RandomScenario& s) {
  int d = s.first_s + 2 * s.converge_within_s;
  for (const RandomFault& f : s.faults) d = std::max(d, std::max(f.until_s, f.at_s + f.over_s) + 2 * s.converge_within_s);
  return d;
}

void add_fault_variants(const RandomScenario& s, std::vector<RandomScenario>& out) {
  for (std::size_t i = s.faults.size(); i-- > 0;) {
    RandomScenario v = s;
    v.faults.erase(v.faults.begin() + long(i));
    out.push_back(v);
  }
  for (std::size_t i = 0; i < s.faults.size(); i++) {
    if (s.faults[i].count > 1) {
      RandomScenario v = s;
      v.faults[i].count = 1;
      out.push_back(v);
    }
  }
}

void add_node_variants(const RandomScenario& s, std::vector<RandomScenario>& out) {
  int first = 0;
  for (std::size_t g = 0; g < s.nodes.size(); g++) {
    const int count = s.nodes[g].count;
    for (int drop : {count / 2, 1}) {
      if (drop >= 1 && drop < s.initial_nodes()) out.push_back(without_nodes(s, g, first + count - drop, drop));
    }
    first += count;
  }
}

void add_workload_variants(const RandomScenario& s, std::vector<RandomScenario>& out) {
  auto with = [&](auto change) {
    RandomScenario v = s;
    change(v);
    out.push_back(v);
  };
  if (s.sessions > 1) with([](RandomScenario& v) { v.sessions /= 2; });
  if (s.gen_tokens > 1) with([](RandomScenario& v) { v.gen_tokens /= 2; });
  if (s.prompt_tokens > 1) with([](RandomScenario& v) { v.prompt_tokens /= 2; });
  const RandomNetwork& n = s.network;
  if (n.jitter_us > 0 || n.loss_pct > 0 || n.duplicate_pct > 0 || n.reorder_pct > 0) {
    with([](RandomScenario& v) { v.network = {v.network.latency_us, 0, v.network.bandwidth_mbit, 0, 0, 0}; });
  }
  const int shortest = shortest_duration(s);
  if (s.duration_s > shortest) {
    with([&](RandomScenario& v) {
      v.duration_s = std::max(shortest, s.duration_s * 2 / 3);
      v.every_s = std::max(1, std::min(v.every_s, (v.duration_s - v.first_s) / std::max(1, v.sessions)));
    });
  }
}

std::vector<RandomScenario> smaller_variants(const RandomScenario& s) {
  std::vector<RandomScenario> out;
  add_fault_variants(s, out);
  add_node_variants(s, out);
  add_workload_variants(s, out);
  return out;
}

}  // namespace

Shrunk shrink(const RandomScenario& failing, int max_runs, const Options& options,
              const std::function<void(const RandomScenario&)>& progress) {
  Shrunk best{failing, simulate(failing.scenario(), failing.seed, options), 1};
  for (bool smaller = !best.summary.ok(); smaller && best.runs < max_runs;) {
    smaller = false;
    for (const RandomScenario& v : smaller_variants(best.scenario)) {
      if (best.runs >= max_runs) break;
      Scenario scenario;
      try {
        scenario = v.scenario();
      } catch (const InputError&) {
        continue;  // a variant the scenario language does not allow (a fault naming a removed node)
      }
      best.runs++;
      Summary summary = simulate(scenario, v.seed, options);
      if (summary.ok()) continue;
      best.scenario = v;
      best.summary = std::move(summary);
      if (progress) progress(v);
      smaller = true;
      break;
    }
  }
  best.scenario.origin = failing.origin + ", shrunk in " + std::to_string(best.runs) + " runs";
  return best;
}

}  // namespace troupe::sim
