// Reading a scenario's YAML (scenario.cpp; each fault kind's own keys in faults.cpp): every
// problem is one InputError "FILE: KEY: what is wrong".
#pragma once

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "troupe/model/error.hpp"
#include "troupe/sim/scenario.hpp"

namespace troupe::sim {

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

// One entry of `faults:` (faults.cpp); `known` is the number of nodes that exist by its time
// (a join adds to it).
Fault read_fault(const Reader& r, const YAML::Node& entry, const std::string& key, int& known);

}  // namespace troupe::sim
