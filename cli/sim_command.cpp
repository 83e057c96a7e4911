// troupe sim SCENARIO [--seed N | --seeds A..B] [--trace FILE] [--json]: runs a scenario in the
// deterministic network simulator (docs/sim.md) and reports; exit 1 when an invariant broke.
// troupe sim --random [--nodes N] (--seed N | --seeds A..B) [--shrink-to FILE] [--json]: the same
// with scenarios generated from each seed; a failing one is shrunk to a smaller scenario file.
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "troupe/model/error.hpp"
#include "troupe/sim/random_scenario.hpp"
#include "troupe/sim/simulator.hpp"

namespace troupe::cli {

namespace {

struct SimFlags {
  std::string scenario;
  long long seed = -1;
  std::string seeds;
  std::string trace;
  bool json = false;
  bool random = false;
  int nodes = 8;
  std::string shrink_to;
};

// How many variants a shrink may run: each is one small simulation.
constexpr int kShrinkRuns = 300;

nlohmann::ordered_json to_json(const sim::Summary& s) {
  nlohmann::ordered_json j;
  j["seed"] = s.seed;
  j["events"] = s.events;
  j["sim_seconds"] = s.sim_seconds;
  j["wall_seconds"] = s.wall_seconds;
  j["wall_events_per_second"] = s.wall_seconds > 0 ? double(s.events) / s.wall_seconds : 0.0;
  j["wall_speedup"] = s.wall_seconds > 0 ? s.sim_seconds / s.wall_seconds : 0.0;
  j["nodes"] = s.nodes;
  j["sessions"] = s.sessions;
  j["sessions_completed"] = s.sessions_completed;
  j["sessions_failed"] = s.sessions_failed;
  j["violations"] = s.violations;
  j["initial_convergence_seconds"] = s.initial_convergence_seconds;
  j["worst_convergence_seconds"] = s.worst_convergence_seconds;
  j["coordinator_changes"] = s.coordinator_changes;
  j["longest_split_seconds"] = s.longest_split_seconds;
  j["frames"] = s.frames;
  j["frames_lost"] = s.frames_lost;
  j["stage_positions"] = s.stage_positions;
  j["sessions_resumed"] = s.sessions_resumed;
  j["positions_kept"] = s.positions_kept;
  j["trace_hash"] = s.trace_hash;
  return j;
}

void print_text(const sim::Summary& s) {
  std::printf("seed: %llu\n", (unsigned long long)s.seed);
  std::printf("events: %llu\n", (unsigned long long)s.events);
  std::printf("sim_seconds: %.3f\n", s.sim_seconds);
  std::printf("wall_seconds: %.3f (%.0f events/s, %.1fx real time)\n", s.wall_seconds,
              s.wall_seconds > 0 ? double(s.events) / s.wall_seconds : 0.0,
              s.wall_seconds > 0 ? s.sim_seconds / s.wall_seconds : 0.0);
  std::printf("nodes: %d\n", s.nodes);
  std::printf("sessions: %d (completed %d, failed %d)\n", s.sessions, s.sessions_completed, s.sessions_failed);
  std::printf("initial_convergence_seconds: %.1f\n", s.initial_convergence_seconds);
  std::printf("worst_convergence_seconds: %.1f\n", s.worst_convergence_seconds);
  std::printf("coordinator_changes: %d\n", s.coordinator_changes);
  std::printf("longest_split_seconds: %.1f\n", s.longest_split_seconds);
  std::printf("frames: %llu (lost %llu)\n", (unsigned long long)s.frames, (unsigned long long)s.frames_lost);
  std::printf("stage_positions: %llu (sessions resumed %llu, positions kept %llu)\n",
              (unsigned long long)s.stage_positions, (unsigned long long)s.sessions_resumed,
              (unsigned long long)s.positions_kept);
  std::printf("violations: %s\n", s.violations.empty() ? "none" : "");
  for (const auto& v : s.violations) std::printf("  - %s\n", v.c_str());
  std::printf("trace_hash: %s\n", s.trace_hash.c_str());
}

std::pair<uint64_t, uint64_t> parse_seed_range(const std::string& text) {
  const auto dots = text.find("..");
  try {
    if (dots != std::string::npos) {
      std::size_t used_a = 0, used_b = 0;
      const long long a = std::stoll(text.substr(0, dots), &used_a);
      const long long b = std::stoll(text.substr(dots + 2), &used_b);
      if (used_a == dots && used_b == text.size() - dots - 2 && a >= 0 && b >= a && b - a < 1000000) {
        return {uint64_t(a), uint64_t(b)};
      }
    }
  } catch (const std::exception&) {
  }
  throw InputError("--seeds: expected A..B with 0 <= A <= B, got '" + text + "'");
}


// Where each seed's scenario comes from: the file, or generated from the seed.
struct Scenarios {
  std::optional<sim::Scenario> file;
  int nodes = 0;
  sim::Scenario of(uint64_t seed) const { return file ? *file : sim::random_scenario(seed, nodes).scenario(); }
};

Scenarios scenarios_of(const SimFlags& f) {
  if (f.random == !f.scenario.empty()) {
    throw InputError(f.random ? "--random: takes no scenario file (the seed makes the scenario)"
                              : "troupe sim: give a scenario file, or --random with --seed N or --seeds A..B");
  }
  if (f.seed < -1) throw InputError("--seed: expected a number >= 0");
  if (!f.random) {
    if (!f.shrink_to.empty()) throw InputError("--shrink-to: only with --random (it shrinks generated scenarios)");
    return {sim::load_scenario(f.scenario), 0};
  }
  if (f.seed < 0 && f.seeds.empty()) throw InputError("--random: needs --seed N or --seeds A..B");
  if (f.nodes < 1 || f.nodes > 100000) throw InputError("--nodes: expected 1..100000, got " + std::to_string(f.nodes));
  return {std::nullopt, f.nodes};
}

// Shrinks the generated scenario of `seed` and writes it to `path`; returns what to say of it.
std::string shrink_to_file(uint64_t seed, int nodes, const std::string& path) {
  const sim::Shrunk s = sim::shrink(sim::random_scenario(seed, nodes), kShrinkRuns);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << s.scenario.yaml();
  if (!out.flush()) throw RuntimeFailure("--shrink-to " + path + ": cannot write the scenario file");
  std::string faults;
  return "seed " + std::to_string(seed) + " shrunk to " + path + " (" + std::to_string(s.scenario.initial_nodes()) +
         " nodes, " + std::to_string(s.scenario.faults.size()) + " faults, " + std::to_string(s.scenario.duration_s) +
         " s; " + std::to_string(s.runs) + " runs): " + (s.summary.violations.empty() ? "" : s.summary.violations[0]) +
         "\nreplay it with: troupe sim " + path;
}

int run_one(const SimFlags& f, const Scenarios& scenarios) {
  sim::Options options;
  options.trace_path = f.trace;
  const sim::Scenario scenario = scenarios.of(f.seed >= 0 ? uint64_t(f.seed) : 0);
  const uint64_t seed = f.seed >= 0 ? uint64_t(f.seed) : scenario.seed;
  const sim::Summary summary = sim::simulate(scenario, seed, options);
  std::string shrunk;
  if (!summary.ok() && !f.shrink_to.empty()) shrunk = shrink_to_file(seed, f.nodes, f.shrink_to);
  if (f.json) {
    nlohmann::ordered_json j = to_json(summary);
    if (!shrunk.empty()) j["shrunk_to"] = f.shrink_to;
    std::printf("%s\n", j.dump().c_str());
  } else {
    print_text(summary);
    if (!shrunk.empty()) std::printf("%s\n", shrunk.c_str());
  }
  if (!summary.ok() && f.random && f.shrink_to.empty() && !f.json) {
    std::printf("(write a smaller scenario that still fails with --shrink-to FILE)\n");
  }
  return summary.ok() ? 0 : 1;
}

std::string one_line(uint64_t seed, const sim::Summary& s) {
  return "seed " + std::to_string(seed) + ": " +
         (s.ok() ? std::string("ok") : std::to_string(s.violations.size()) + " violation(s): " + s.violations[0]) +
         ", " + std::to_string(s.events) + " events, trace " + s.trace_hash;
}

int run_range(const SimFlags& f, const Scenarios& scenarios) {
  if (!f.trace.empty()) throw InputError("--trace: takes one run (--seed), not --seeds");
  const auto [first, last] = parse_seed_range(f.seeds);
  std::vector<uint64_t> failing;
  nlohmann::ordered_json runs = nlohmann::ordered_json::array();
  for (uint64_t s = first; s <= last; s++) {
    const sim::Summary summary = sim::simulate(scenarios.of(s), s);
    if (!summary.ok()) failing.push_back(s);
    if (f.json) runs.push_back(to_json(summary));
    if (!f.json) std::printf("%s\n", one_line(s, summary).c_str());
    std::fflush(stdout);
  }
  const std::string shrunk = failing.empty() || f.shrink_to.empty() ? "" : shrink_to_file(failing[0], f.nodes, f.shrink_to);
  if (f.json) {
    nlohmann::ordered_json j;
    j["runs"] = runs;
    j["failing_seeds"] = failing;
    if (!shrunk.empty()) j["shrunk_to"] = f.shrink_to;
    std::printf("%s\n", j.dump().c_str());
  } else if (failing.empty()) {
    std::printf("all %llu seeds passed\n", (unsigned long long)(last - first + 1));
  } else {
    std::string list;
    for (auto s : failing) list += (list.empty() ? "" : " ") + std::to_string(s);
    std::printf("failing seeds: %s (replay one with --seed N --trace FILE%s)\n", list.c_str(),
                f.random && f.shrink_to.empty() ? "; shrink the first with --shrink-to FILE" : "");
    if (!shrunk.empty()) std::printf("%s\n", shrunk.c_str());
  }
  return failing.empty() ? 0 : 1;
}

}  // namespace

Action add_sim_command(CLI::App& app) {
  auto flags = std::make_shared<SimFlags>();
  auto* cmd = app.add_subcommand("sim", "Run a scenario in the deterministic network simulator (docs/sim.md)");
  cmd->add_option("scenario", flags->scenario, "Scenario file (YAML)");
  cmd->add_flag("--random", flags->random, "Generate each seed's scenario from the seed (devices, network, workload, faults)");
  cmd->add_option("--nodes", flags->nodes, "With --random: devices at the start (default 8)");
  auto* seed = cmd->add_option("--seed", flags->seed, "Seed to run with (default: the scenario's)");
  auto* seeds = cmd->add_option("--seeds", flags->seeds, "Run every seed in A..B and name the failing ones");
  seed->excludes(seeds);
  cmd->add_option("--shrink-to", flags->shrink_to, "With --random: shrink a failing seed's scenario and write it to FILE");
  cmd->add_option("--trace", flags->trace, "Write every event to FILE");
  cmd->add_flag("--json", flags->json, "Print the summary as one JSON object");
  return [flags] {
    const Scenarios scenarios = scenarios_of(*flags);
    return flags->seeds.empty() ? run_one(*flags, scenarios) : run_range(*flags, scenarios);
  };
}

}  // namespace troupe::cli
