#include "troupe/sim/scenario.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "scenario_reader.hpp"
#include "troupe/model/error.hpp"

namespace troupe::sim {

namespace {

void read_workload(const Reader& r, const YAML::Node& n, Workload& w) {
  r.only_keys(n, "workload", {"sessions", "prompt_tokens", "gen_tokens", "arrival"});
  if (n["sessions"]) w.sessions = static_cast<int>(r.integer(n["sessions"], "workload.sessions", 0, 1000000));
  if (n["prompt_tokens"]) w.prompt_tokens = static_cast<int>(r.integer(n["prompt_tokens"], "workload.prompt_tokens", 1, 1 << 20));
  if (n["gen_tokens"]) w.gen_tokens = static_cast<int>(r.integer(n["gen_tokens"], "workload.gen_tokens", 1, 1 << 20));
  if (n["arrival"]) {
    // "every D" or "every D from F"
    std::istringstream words(r.text(n["arrival"], "workload.arrival"));
    std::string every, d, from, f, rest;
    words >> every >> d >> from >> f >> rest;
    if (every != "every" || d.empty() || !(from.empty() || (from == "from" && !f.empty())) || !rest.empty()) {
      r.fail("workload.arrival", "expected 'every D' or 'every D from T', such as 'every 20s from 30s'");
    }
    w.every = r.duration(d, "workload.arrival");
    if (w.every.count() <= 0) r.fail("workload.arrival", "the interval must be more than 0");
    w.first = from.empty() ? w.every : r.duration(f, "workload.arrival");
  }
}

void read_network(const Reader& r, const YAML::Node& n, LinkSpec& l) {
  r.only_keys(n, "network", {"latency", "jitter", "bandwidth", "loss", "duplicate", "reorder"});
  if (n["latency"]) l.latency = r.duration(n["latency"], "network.latency");
  if (n["jitter"]) l.jitter = r.duration(n["jitter"], "network.jitter");
  if (n["bandwidth"]) l.bandwidth = r.bandwidth(n["bandwidth"], "network.bandwidth");
  if (n["loss"]) l.loss = r.fraction(n["loss"], "network.loss");
  if (n["duplicate"]) l.duplicate = r.fraction(n["duplicate"], "network.duplicate");
  if (n["reorder"]) l.reorder = r.fraction(n["reorder"], "network.reorder");
}

}  // namespace

Scenario parse_scenario(const std::string& yaml_text, const std::string& name) {
  const Reader r{name};
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw InputError(name + ": line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  Scenario s;
  s.file = name;
  try {
    r.only_keys(root, "", {"seed", "duration", "model", "nodes", "join", "network", "workload", "faults", "expect"});
    if (root["seed"]) s.seed = static_cast<uint64_t>(r.integer(root["seed"], "seed", 0, (1LL << 62)));
    if (root["duration"]) s.duration = r.duration(root["duration"], "duration");
    if (s.duration.count() <= 0) r.fail("duration", "must be more than 0");
    if (root["model"]) {
      r.only_keys(root["model"], "model", {"shape", "type"});
      if (root["model"]["shape"]) s.model.shape = r.text(root["model"]["shape"], "model.shape");
      if (root["model"]["type"]) s.model.type = r.text(root["model"]["type"], "model.type");
    }
    try {
      price_model(s.model, "model");
    } catch (const InputError& e) {
      throw InputError(name + ": " + e.what());
    }
    if (!root["nodes"] || !root["nodes"].IsSequence() || root["nodes"].size() == 0) {
      r.fail("nodes", "expected a list of {count: N, profile: P}");
    }
    int known = 0;
    for (std::size_t i = 0; i < root["nodes"].size(); i++) {
      const std::string k = "nodes[" + std::to_string(i) + "]";
      const YAML::Node g = root["nodes"][i];
      r.only_keys(g, k, {"count", "profile"});
      NodeGroup group;
      if (g["count"]) group.count = static_cast<int>(r.integer(g["count"], k + ".count", 1, 100000));
      if (!g["profile"]) r.fail(k + ".profile", "missing: the devices' profile");
      group.profile = r.text(g["profile"], k + ".profile");
      r.known_profile(group.profile, k + ".profile");
      known += group.count;
      s.nodes.push_back(group);
    }
    if (known > 100000) r.fail("nodes", "more than 100000 nodes");
    if (root["join"]) {
      const std::string join = r.text(root["join"], "join");
      if (join != "first" && join != "random") r.fail("join", "expected first or random, not " + join);
      s.join = join == "random" ? StartJoin::random_earlier : StartJoin::first;
    }
    if (root["network"]) read_network(r, root["network"], s.network);
    if (root["workload"]) read_workload(r, root["workload"], s.workload);
    if (root["faults"]) {
      if (!root["faults"].IsSequence()) r.fail("faults", "expected a list");
      // Joins add nodes: a later fault may name them. Read in time order for that.
      std::vector<std::pair<Nanos, std::size_t>> order;
      for (std::size_t i = 0; i < root["faults"].size(); i++) {
        const YAML::Node f = root["faults"][i];
        const std::string k = "faults[" + std::to_string(i) + "]";
        if (!f.IsMap() || !f["at"]) r.fail(k + ".at", "missing: when the fault happens");
        order.push_back({r.duration(f["at"], k + ".at"), i});
      }
      std::stable_sort(order.begin(), order.end());
      for (const auto& [at, i] : order) {
        s.faults.push_back(read_fault(r, root["faults"][i], "faults[" + std::to_string(i) + "]", known));
      }
    }
    if (root["expect"]) {
      r.only_keys(root["expect"], "expect", {"converge_within", "drain"});
      if (root["expect"]["converge_within"]) s.expect.converge_within = r.duration(root["expect"]["converge_within"], "expect.converge_within");
      if (root["expect"]["drain"]) s.expect.drain = r.duration(root["expect"]["drain"], "expect.drain");
    }
  } catch (const YAML::Exception& e) {
    throw InputError(name + ": line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return s;
}

Scenario load_scenario(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot read the scenario file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_scenario(text.str(), path);
}

}  // namespace troupe::sim
