// troupe sim SCENARIO [--seed N | --seeds A..B] [--trace FILE] [--json]: runs a scenario in the
// deterministic network simulator (docs/sim.md) and reports; exit 1 when an invariant broke.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "troupe/model/error.hpp"
#include "troupe/sim/simulator.hpp"

namespace troupe::cli {

namespace {

struct SimFlags {
  std::string scenario;
  long long seed = -1;
  std::string seeds;
  std::string trace;
  bool json = false;
};

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
  j["frames"] = s.frames;
  j["frames_lost"] = s.frames_lost;
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
  std::printf("frames: %llu (lost %llu)\n", (unsigned long long)s.frames, (unsigned long long)s.frames_lost);
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

}  // namespace

Action add_sim_command(CLI::App& app) {
  auto flags = std::make_shared<SimFlags>();
  auto* cmd = app.add_subcommand("sim", "Run a scenario in the deterministic network simulator (docs/sim.md)");
  cmd->add_option("scenario", flags->scenario, "Scenario file (YAML)")->required();
  auto* seed = cmd->add_option("--seed", flags->seed, "Seed to run with (default: the scenario's)");
  auto* seeds = cmd->add_option("--seeds", flags->seeds, "Run every seed in A..B and name the failing ones");
  seed->excludes(seeds);
  cmd->add_option("--trace", flags->trace, "Write every event to FILE");
  cmd->add_flag("--json", flags->json, "Print the summary as one JSON object");
  return [flags] {
    const sim::Scenario scenario = sim::load_scenario(flags->scenario);
    if (flags->seed < -1) throw InputError("--seed: expected a number >= 0");
    if (flags->seeds.empty()) {
      sim::Options options;
      options.trace_path = flags->trace;
      const uint64_t s = flags->seed >= 0 ? uint64_t(flags->seed) : scenario.seed;
      const sim::Summary summary = sim::simulate(scenario, s, options);
      if (flags->json) {
        std::printf("%s\n", to_json(summary).dump().c_str());
      } else {
        print_text(summary);
      }
      return summary.ok() ? 0 : 1;
    }
    if (!flags->trace.empty()) throw InputError("--trace: takes one run (--seed), not --seeds");
    const auto [first, last] = parse_seed_range(flags->seeds);
    std::vector<uint64_t> failing;
    nlohmann::ordered_json runs = nlohmann::ordered_json::array();
    for (uint64_t s = first; s <= last; s++) {
      const sim::Summary summary = sim::simulate(scenario, s);
      if (!summary.ok()) failing.push_back(s);
      if (flags->json) {
        runs.push_back(to_json(summary));
      } else {
        std::printf("seed %llu: %s, %llu events, trace %s\n", (unsigned long long)s,
                    summary.ok() ? "ok" : (std::to_string(summary.violations.size()) + " violation(s): " + summary.violations[0]).c_str(),
                    (unsigned long long)summary.events, summary.trace_hash.c_str());
      }
      std::fflush(stdout);
    }
    if (flags->json) {
      nlohmann::ordered_json j;
      j["runs"] = runs;
      j["failing_seeds"] = failing;
      std::printf("%s\n", j.dump().c_str());
    } else if (failing.empty()) {
      std::printf("all %llu seeds passed\n", (unsigned long long)(last - first + 1));
    } else {
      std::string list;
      for (auto s : failing) list += (list.empty() ? "" : " ") + std::to_string(s);
      std::printf("failing seeds: %s (replay one with --seed N --trace FILE)\n", list.c_str());
    }
    return failing.empty() ? 0 : 1;
  };
}

}  // namespace troupe::cli
