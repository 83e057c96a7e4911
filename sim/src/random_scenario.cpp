// Generating a scenario from a seed (random_scenario.hpp). Only integer arithmetic on the seed's
// own generator (splitmix64), never the standard library's distributions, whose results differ
// between library versions: a seed names the same scenario everywhere.
#include "troupe/sim/random_scenario.hpp"

#include <algorithm>
#include <cstdio>

namespace troupe::sim {

namespace {

class Dice {
 public:
  explicit Dice(uint64_t seed) : state_(seed ^ 0x7a0b5c3d1e2f4a69ULL) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int between(int lo, int hi) { return lo + int(next() % uint64_t(hi - lo + 1)); }  // lo..hi
  bool chance(int percent) { return between(1, 100) <= percent; }
  template <class T>
  const T& one_of(const std::vector<T>& xs) { return xs[next() % xs.size()]; }
  // `k` distinct indices below `n`, ascending.
  std::vector<int> some(int n, int k) {
    std::vector<int> all(n);
    for (int i = 0; i < n; i++) all[i] = i;
    for (int i = 0; i < k && i < n; i++) std::swap(all[i], all[between(i, n - 1)]);
    all.resize(std::min(k, n));
    std::sort(all.begin(), all.end());
    return all;
  }

 private:
  uint64_t state_;
};

// Models small enough for the simulator to run quickly, each with the devices that can hold a
// share of it (a milkv-duo's 64 MiB holds a layer of stories15m, not of a larger model).
struct ModelChoice {
  ModelSpec model;
  std::vector<std::string> profiles;
};

const std::vector<ModelChoice>& model_choices() {
  static const std::vector<ModelChoice> choices = {
      {{"stories15m", "f32"}, {"milkv-duo", "rpi4", "rpi5", "laptop"}},
      {{"stories110m", "q8_0"}, {"rpi4", "rpi5", "jetson-nano", "laptop"}},
      {{"tinyllama-1.1b", "q4_0"}, {"rpi4", "rpi5", "jetson-nano", "laptop", "desktop"}},
      {{"llama2-7b", "q4_0"}, {"rpi5", "laptop", "desktop"}},
  };
  return choices;
}

RandomNetwork random_network(Dice& d) {
  RandomNetwork n;
  n.latency_us = d.one_of(std::vector<int>{200, 1000, 3000, 8000, 20000});
  n.jitter_us = n.latency_us * d.between(0, 50) / 100;
  n.bandwidth_mbit = d.one_of(std::vector<int>{20, 100, 1000});
  n.loss_pct = d.chance(50) ? d.between(0, 30) / 10.0 : 0;  // up to 3%
  n.duplicate_pct = d.chance(25) ? d.between(1, 10) / 10.0 : 0;
  n.reorder_pct = d.chance(25) ? d.between(1, 20) / 10.0 : 0;
  return n;
}

// A link fault's or a partition's end: 10 to 90 s on.
int until(Dice& d, int at) { return at + d.between(10, 90); }

// One fault at `at`, among the `known` nodes that exist by then (joins add to them).
RandomFault random_fault(Dice& d, int at, int& known, const std::vector<std::string>& profiles) {
  using K = RandomFault::Kind;
  RandomFault f;
  f.at_s = at;
  f.kind = static_cast<K>(d.between(0, int(K::skew)));
  switch (f.kind) {
    case K::crash: f.count = d.between(1, std::max(1, known / 4)); break;
    case K::restart: break;
    case K::leave: f.count = 1; break;
    case K::join:
      f.count = d.between(1, 2);
      f.value = d.one_of(profiles);
      known += f.count;
      break;
    case K::partition:
      f.nodes = d.some(known, d.between(1, std::max(1, known / 2)));
      f.until_s = until(d, at);
      f.one_way = d.chance(20);
      break;
    case K::loss: f.value = std::to_string(d.between(5, 30)) + "%"; break;
    case K::latency: f.value = std::to_string(d.between(20, 300)) + "ms"; break;
    case K::bandwidth: f.value = std::to_string(d.between(1, 20)) + "Mbit"; break;
    case K::skew:
      f.value = std::to_string(d.between(100, 3000)) + "ms";
      if (d.chance(50)) f.value.insert(0, "-");  // back
      f.nodes = d.some(known, d.between(1, 2));
      if (d.chance(30)) f.over_s = d.between(5, 60);
      break;
  }
  if (f.kind == K::loss || f.kind == K::latency || f.kind == K::bandwidth) {
    f.until_s = until(d, at);
    if (d.chance(50)) f.nodes = d.some(known, d.between(1, std::max(1, known / 3)));
  }
  return f;
}

}  // namespace

RandomScenario random_scenario(uint64_t seed, int nodes) {
  Dice d(seed);
  RandomScenario s;
  s.seed = seed;
  s.origin = "troupe sim --random --nodes " + std::to_string(nodes) + " --seed " + std::to_string(seed);
  s.duration_s = d.between(120, 480);
  const ModelChoice& choice = d.one_of(model_choices());
  s.model = choice.model;
  // One to three groups of devices.
  const int groups = std::min(nodes, d.between(1, 3));
  for (int g = 0, left = nodes; g < groups; g++) {
    const int count = g + 1 == groups ? left : d.between(1, left - (groups - g - 1));
    s.nodes.push_back({count, d.one_of(choice.profiles)});
    left -= count;
  }
  s.network = random_network(d);
  s.sessions = d.between(2, 12);
  s.prompt_tokens = d.between(2, 32);
  s.gen_tokens = d.between(2, 48);
  s.first_s = d.between(10, 30);
  s.every_s = std::max(1, (s.duration_s - s.first_s) / s.sessions);
  int known = nodes;
  const int faults = d.between(0, 6);
  std::vector<int> times;
  for (int i = 0; i < faults; i++) times.push_back(d.between(15, std::max(16, s.duration_s - 30)));
  std::sort(times.begin(), times.end());
  for (int at : times) s.faults.push_back(random_fault(d, at, known, choice.profiles));
  // The run goes on long enough after the last fault's end for the mesh to settle.
  for (const RandomFault& f : s.faults) {
    s.duration_s = std::max(s.duration_s, std::max(f.until_s, f.at_s + f.over_s) + 2 * s.converge_within_s);
  }
  return s;
}

// --- as the scenario language -------------------------------------------------------------------

namespace {

std::string list(const std::vector<int>& xs) {
  std::string out = "[";
  for (std::size_t i = 0; i < xs.size(); i++) out += (i ? ", " : "") + std::to_string(xs[i]);
  return out + "]";
}

std::string seconds(int s) { return std::to_string(s) + "s"; }

std::string percent(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g%%", p);
  return buf;
}

std::string fault_yaml(const RandomFault& f) {
  using K = RandomFault::Kind;
  std::string y = "{at: " + seconds(f.at_s) + ", ";
  switch (f.kind) {
    case K::crash: y += "crash: " + std::to_string(f.count); break;
    case K::restart: y += "restart: crashed"; break;
    case K::leave: y += "leave: " + std::to_string(f.count); break;
    case K::join: y += "join: " + std::to_string(f.count) + ", profile: " + f.value; break;
    case K::partition:
      y += "partition: [" + list(f.nodes) + ", rest], heal_at: " + seconds(f.until_s);
      if (f.one_way) y += ", one_way: true";
      break;
    case K::loss: y += "loss: " + f.value; break;
    case K::latency: y += "latency: " + f.value; break;
    case K::bandwidth: y += "bandwidth: " + f.value; break;
    case K::skew:
      y += "skew: " + f.value + ", nodes: " + list(f.nodes);
      if (f.over_s > 0) y += ", over: " + seconds(f.over_s);
      break;
  }
  if (f.kind == K::loss || f.kind == K::latency || f.kind == K::bandwidth) {
    y += ", until: " + seconds(f.until_s);
    if (!f.nodes.empty()) y += ", nodes: " + list(f.nodes);
  }
  return y + "}";
}

std::string network_yaml(const RandomNetwork& n) {
  return "{latency: " + std::to_string(n.latency_us) + "us, jitter: " + std::to_string(n.jitter_us) +
         "us, bandwidth: " + std::to_string(n.bandwidth_mbit) + "Mbit, loss: " + percent(n.loss_pct) +
         ", duplicate: " + percent(n.duplicate_pct) + ", reorder: " + percent(n.reorder_pct) + "}";
}

}  // namespace

int RandomScenario::initial_nodes() const {
  int n = 0;
  for (const auto& g : nodes) n += g.count;
  return n;
}

std::string RandomScenario::yaml() const {
  std::string y = "# " + origin + "\n";
  y += "seed: " + std::to_string(seed) + "\n";
  y += "duration: " + seconds(duration_s) + "\n";
  y += "model: {shape: " + model.shape + ", type: " + model.type + "}\n";
  y += "nodes:\n";
  for (const auto& g : nodes) y += "  - {count: " + std::to_string(g.count) + ", profile: " + g.profile + "}\n";
  y += "network: " + network_yaml(network) + "\n";
  y += "workload: {sessions: " + std::to_string(sessions) + ", prompt_tokens: " + std::to_string(prompt_tokens) +
       ", gen_tokens: " + std::to_string(gen_tokens) + ", arrival: every " + seconds(every_s) + " from " +
       seconds(first_s) + "}\n";
  y += faults.empty() ? "faults: []\n" : "faults:\n";
  for (const auto& f : faults) y += "  - " + fault_yaml(f) + "\n";
  y += "expect: {converge_within: " + seconds(converge_within_s) + "}\n";
  return y;
}

Scenario RandomScenario::scenario() const { return parse_scenario(yaml(), "seed " + std::to_string(seed)); }

}  // namespace troupe::sim
