#include "troupe/sim/scenario.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "troupe/model/error.hpp"

namespace troupe::sim {

namespace {

// Every problem is reported as "FILE: KEY: what", with KEY the path to the value at fault.
struct Reader {
  std::string file;

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw InputError(file + ": " + key + ": " + what);
  }

  void only_keys(const YAML::Node& map, const std::string& key, std::set<std::string> allowed) const {
    if (!map.IsMap()) fail(key, "expected a mapping");
    for (const auto& kv : map) {
      const std::string k = kv.first.as<std::string>();
      if (!allowed.count(k)) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        fail(key.empty() ? k : key + "." + k, "unknown key (expected one of: " + list + ")");
      }
    }
  }

  std::string text(const YAML::Node& n, const std::string& key) const {
    if (!n.IsScalar()) fail(key, "expected a single value");
    return n.as<std::string>();
  }

  double number(const std::string& s, const std::string& key, const std::string& what) const {
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(s, &used);
    } catch (const std::exception&) {
      fail(key, "expected " + what + ", got '" + s + "'");
    }
    if (used != s.size() || !std::isfinite(v) || v < 0) fail(key, "expected " + what + ", got '" + s + "'");
    return v;
  }

  long long integer(const YAML::Node& n, const std::string& key, long long lo, long long hi) const {
    const std::string s = text(n, key);
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(s, &used);
    } catch (const std::exception&) {
      fail(key, "expected a whole number, got '" + s + "'");
    }
    if (used != s.size()) fail(key, "expected a whole number, got '" + s + "'");
    if (v < lo || v > hi) fail(key, s + " is out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")");
    return v;
  }

  // Splits "12.5ms" into 12.5 and "ms".
  std::pair<double, std::string> quantity(const std::string& s, const std::string& key,
                                          const std::string& what) const {
    std::size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) i++;
    if (i == 0) fail(key, "expected " + what + ", got '" + s + "'");
    std::string unit = s.substr(i);
    while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
    return {number(s.substr(0, i), key, what), unit};
  }

  Nanos duration(const std::string& s, const std::string& key) const {
    const std::string what = "a duration such as 250ms, 30s or 5m";
    auto [v, unit] = quantity(s, key, what);
    double scale = 0;
    if (unit == "us") scale = 1e3;
    if (unit == "ms") scale = 1e6;
    if (unit == "s") scale = 1e9;
    if (unit == "m" || unit == "min") scale = 60e9;
    if (unit == "h") scale = 3600e9;
    if (scale == 0) fail(key, "expected " + what + ", got '" + s + "'");
    if (v * scale > 1e18) fail(key, "'" + s + "' is too long");
    return Nanos(static_cast<int64_t>(std::llround(v * scale)));
  }
  Nanos duration(const YAML::Node& n, const std::string& key) const { return duration(text(n, key), key); }

  double fraction(const YAML::Node& n, const std::string& key) const {
    const std::string s = text(n, key);
    double v = 0;
    if (!s.empty() && s.back() == '%') {
      v = number(s.substr(0, s.size() - 1), key, "a percentage such as 0.5%") / 100;
    } else {
      v = number(s, key, "a percentage such as 0.5% (or a fraction 0..1)");
    }
    if (v > 1) fail(key, "'" + s + "' is more than 100%");
    return v;
  }

  double bandwidth(const YAML::Node& n, const std::string& key) const {
    const std::string s = text(n, key);
    const std::string what = "a bandwidth such as 100Mbit, 1Gbit or 10MB/s";
    auto [v, unit] = quantity(s, key, what);
    double bytes = 0;
    if (unit == "bit") bytes = 1.0 / 8;
    if (unit == "Kbit") bytes = 1e3 / 8;
    if (unit == "Mbit") bytes = 1e6 / 8;
    if (unit == "Gbit") bytes = 1e9 / 8;
    if (unit == "B/s") bytes = 1;
    if (unit == "KB/s") bytes = 1e3;
    if (unit == "MB/s") bytes = 1e6;
    if (unit == "GB/s") bytes = 1e9;
    if (bytes == 0) fail(key, "expected " + what + ", got '" + s + "'");
    if (v <= 0) fail(key, "a bandwidth must be more than 0");
    return v * bytes;
  }

  void known_profile(const std::string& profile, const std::string& key) const {
    try {
      device_profile(profile, key);
    } catch (const InputError& e) {
      throw InputError(file + ": " + e.what());
    }
  }

  std::vector<int> indices(const YAML::Node& n, const std::string& key, int known) const {
    if (!n.IsSequence()) fail(key, "expected a list of node indices");
    std::vector<int> out;
    for (std::size_t i = 0; i < n.size(); i++) {
      const std::string k = key + "[" + std::to_string(i) + "]";
      const int v = static_cast<int>(integer(n[i], k, 0, 1 << 30));
      if (v >= known) fail(k, "no node " + std::to_string(v) + " (" + std::to_string(known) + " nodes by then)");
      out.push_back(v);
    }
    return out;
  }
};

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

// One fault; `known` is the number of nodes that exist by its time (joins add to it).
Fault read_fault(const Reader& r, const YAML::Node& n, const std::string& key, int& known) {
  if (!n.IsMap()) r.fail(key, "expected a mapping such as {at: 120s, crash: 2}");
  if (!n["at"]) r.fail(key + ".at", "missing: when the fault happens");
  Fault f;
  f.where = key;
  f.at = r.duration(n["at"], key + ".at");
  const std::vector<std::pair<const char*, Fault::Kind>> kinds = {
      {"crash", Fault::Kind::crash},         {"restart", Fault::Kind::restart},
      {"leave", Fault::Kind::leave},         {"join", Fault::Kind::join},
      {"partition", Fault::Kind::partition}, {"loss", Fault::Kind::loss},
      {"latency", Fault::Kind::latency},     {"bandwidth", Fault::Kind::bandwidth},
      {"skew", Fault::Kind::skew}};
  std::string kind;
  for (const auto& [name, k] : kinds) {
    if (!n[name]) continue;
    if (!kind.empty()) r.fail(key, "one fault per entry: both '" + kind + "' and '" + name + "'");
    kind = name;
    f.kind = k;
  }
  if (kind.empty()) r.fail(key, "no fault (crash, restart, leave, join, partition, loss, latency, bandwidth or skew)");
  const std::string k = key + "." + kind;
  const YAML::Node v = n[kind];
  std::set<std::string> allowed = {"at", kind};
  auto count_or_nodes = [&] {
    if (v.IsSequence()) {
      f.nodes = r.indices(v, k, known);
    } else {
      f.count = static_cast<int>(r.integer(v, k, 1, 1 << 20));
    }
  };
  switch (f.kind) {
    case Fault::Kind::crash:
    case Fault::Kind::leave:
      count_or_nodes();
      break;
    case Fault::Kind::restart:
      if (v.IsScalar() && v.as<std::string>() == "crashed") {
        f.crashed = true;
      } else if (v.IsSequence()) {
        f.nodes = r.indices(v, k, known);
      } else {
        r.fail(k, "expected 'crashed' or a list of node indices");
      }
      break;
    case Fault::Kind::join:
      f.count = static_cast<int>(r.integer(v, k, 1, 1 << 20));
      allowed.insert("profile");
      if (!n["profile"]) r.fail(key + ".profile", "missing: the joining devices' profile");
      f.profile = r.text(n["profile"], key + ".profile");
      r.known_profile(f.profile, key + ".profile");
      known += f.count;
      break;
    case Fault::Kind::partition: {
      allowed.insert({"heal_at", "one_way"});
      if (!v.IsSequence() || v.size() != 2) r.fail(k, "expected [[indices...], rest] or [[indices...], [indices...]]");
      f.side_a = r.indices(v[0], k + "[0]", known);
      if (v[1].IsScalar() && v[1].as<std::string>() == "rest") {
        f.b_is_rest = true;
      } else {
        f.side_b = r.indices(v[1], k + "[1]", known);
      }
      for (int x : f.side_b) {
        if (std::count(f.side_a.begin(), f.side_a.end(), x)) r.fail(k, "node " + std::to_string(x) + " is on both sides");
      }
      if (n["heal_at"]) f.until = r.duration(n["heal_at"], key + ".heal_at");
      if (n["one_way"]) f.one_way = r.text(n["one_way"], key + ".one_way") == "true";
      break;
    }
    case Fault::Kind::loss:
      f.value = r.fraction(v, k);
      allowed.insert({"until", "nodes"});
      break;
    case Fault::Kind::latency:
      f.duration = r.duration(v, k);
      allowed.insert({"until", "nodes"});
      break;
    case Fault::Kind::bandwidth:
      f.value = r.bandwidth(v, k);
      allowed.insert({"until", "nodes"});
      break;
    case Fault::Kind::skew: {
      // "skew: 2s" or "skew: -2s": the nodes' clocks jump by that much, or drift by it `over` a time.
      std::string s = r.text(v, k);
      const bool negative = !s.empty() && s[0] == '-';
      f.duration = r.duration(negative ? s.substr(1) : s, k);
      if (negative) f.duration = -f.duration;
      allowed.insert({"nodes", "over"});
      if (!n["nodes"]) r.fail(key + ".nodes", "missing: whose clocks are skewed");
      if (n["over"]) {
        f.over = r.duration(n["over"], key + ".over");
        // A drift as fast as the clock itself would stop it or run it backwards.
        if (f.over <= (f.duration < Nanos(0) ? -f.duration : f.duration)) {
          r.fail(key + ".over", "must be longer than the skew (a clock that drifts keeps running forwards)");
        }
      }
      break;
    }
  }
  if (n["nodes"] && allowed.count("nodes")) f.nodes = r.indices(n["nodes"], key + ".nodes", known);
  if (n["until"] && allowed.count("until")) f.until = r.duration(n["until"], key + ".until");
  r.only_keys(n, key, allowed);
  if (f.until && *f.until <= f.at) r.fail(key + (f.kind == Fault::Kind::partition ? ".heal_at" : ".until"), "must come after 'at'");
  return f;
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
    r.only_keys(root, "", {"seed", "duration", "model", "nodes", "network", "workload", "faults", "expect"});
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
