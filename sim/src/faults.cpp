// The faults (docs/sim.md): each kind's section reads its YAML (`parse`), makes it happen
// (`apply`) and, for a kind with an end, undoes it (`end`). The kinds are the alternatives of
// sim::FaultKind (scenario.hpp); the dispatch at the bottom finds each kind's functions by
// overload, so a kind without its three functions does not compile.
#include <algorithm>
#include <utility>
#include <variant>

#include "scenario_reader.hpp"
#include "world.hpp"

namespace troupe::sim {

namespace {

// One entry of `faults:`, as its kind's `parse` reads it.
struct Entry {
  const Reader& r;
  const YAML::Node& yaml;          // the whole entry: {at: T, KIND: VALUE, the kind's own keys}
  const YAML::Node value;          // yaml[KIND]
  const std::string key;           // "faults[3]"
  const std::string value_key;     // "faults[3].KIND"
  int& known;                      // the nodes that exist by the fault's time
  std::set<std::string> allowed;   // the keys the entry may have: "at", KIND, and what parse adds
  std::optional<Nanos> until;      // when the fault ends, read by parse
  std::string until_key = "until";  // the key it was read from, for "must come after 'at'"

  // `name`'s value as node indices, or none when the entry has no such key.
  std::vector<int> nodes(const std::string& name) const {
    return yaml[name] ? r.indices(yaml[name], key + "." + name, known) : std::vector<int>{};
  }
  // A link fault's `nodes` and `until`.
  void link_keys(std::vector<int>& link_nodes) {
    allowed.insert({"until", "nodes"});
    link_nodes = nodes("nodes");
    if (yaml["until"]) until = r.duration(yaml["until"], key + ".until");
  }
};

// `p.count` random live nodes (none twice), or `p.nodes`.
std::vector<int> pick(World& w, const PickedNodes& p) {
  if (!p.nodes.empty()) return p.nodes;
  std::vector<int> out;
  for (int i = 0; i < p.count; i++) {
    const int n = w.live_random();
    if (n < 0) break;
    out.push_back(n);
    w.nodes_[n]->life = SimNode::Life::crashed;  // not picked twice; restored below
  }
  for (int n : out) w.nodes_[n]->life = SimNode::Life::up;
  return out;
}

// "crash: 2" or "crash: [0, 3]".
void parse_picked(Entry& e, PickedNodes& p) {
  if (e.value.IsSequence()) {
    p.nodes = e.r.indices(e.value, e.value_key, e.known);
  } else {
    p.count = static_cast<int>(e.r.integer(e.value, e.value_key, 1, 1 << 20));
  }
}

// How long a leaving node runs after telling the mesh, as Node::stop waits for its frames.
constexpr Nanos kLeaveLinger = 100ms;

// --- crash: N random live nodes, or these, stop at once -------------------------------------------

void parse(Entry& e, Crash& c) { parse_picked(e, c.who); }

void apply(World& w, int, const Fault&, const Crash& c) {
  for (int n : pick(w, c.who)) w.crash(*w.nodes_[n], SimNode::Life::crashed);
}

void end(World&, int, const Fault&, const Crash&) {}  // a restart is a fault of its own

// --- restart: every crashed node, or these, start again as a new process ---------------------------

void parse(Entry& e, Restart& r) {
  if (e.value.IsScalar() && e.value.as<std::string>() == "crashed") {
    r.crashed = true;
  } else if (e.value.IsSequence()) {
    r.nodes = e.r.indices(e.value, e.value_key, e.known);
  } else {
    e.r.fail(e.value_key, "expected 'crashed' or a list of node indices");
  }
}

void apply(World& w, int, const Fault&, const Restart& r) {
  for (std::size_t n = 0; n < w.nodes_.size(); n++) {
    const bool listed = std::count(r.nodes.begin(), r.nodes.end(), int(n)) > 0;
    SimNode& node = *w.nodes_[n];
    if (r.crashed ? node.life != SimNode::Life::crashed || node.instance == 0 : !listed) continue;
    w.crash(node, SimNode::Life::crashed);
    w.start_soon(int(n), kThroughLive);
  }
}

void end(World&, int, const Fault&, const Restart&) {}

// --- leave: graceful, as Node::stop: tell the mesh, linger, exit ------------------------------------

void parse(Entry& e, Leave& l) { parse_picked(e, l.who); }

void apply(World& w, int, const Fault&, const Leave& l) {
  for (int n : pick(w, l.who)) {
    SimNode& node = *w.nodes_[n];
    if (node.life != SimNode::Life::up) continue;
    node.process->actors->leave();
    w.schedule(w.now() + kLeaveLinger, EventKind::left, n, node.generation);
  }
}

void end(World&, int, const Fault&, const Leave&) {}

// --- join: N new nodes of a profile join through random live nodes ---------------------------------

void parse(Entry& e, Join& j) {
  j.count = static_cast<int>(e.r.integer(e.value, e.value_key, 1, 1 << 20));
  e.allowed.insert("profile");
  if (!e.yaml["profile"]) e.r.fail(e.key + ".profile", "missing: the joining devices' profile");
  j.profile = e.r.text(e.yaml["profile"], e.key + ".profile");
  e.r.known_profile(j.profile, e.key + ".profile");
  e.known += j.count;
}

void apply(World& w, int, const Fault&, const Join& j) {
  for (int i = 0; i < j.count; i++) w.start_soon(w.add_node(j.profile), kThroughLive);
}

void end(World&, int, const Fault&, const Join&) {}

// --- partition: frames between two sides (one way: from a to b) are lost until heal_at --------------

void parse(Entry& e, Partition& p) {
  e.allowed.insert({"heal_at", "one_way"});
  const std::string& k = e.value_key;
  if (!e.value.IsSequence() || e.value.size() != 2) e.r.fail(k, "expected [[indices...], rest] or [[indices...], [indices...]]");
  p.side_a = e.r.indices(e.value[0], k + "[0]", e.known);
  if (e.value[1].IsScalar() && e.value[1].as<std::string>() == "rest") {
    p.b_is_rest = true;
  } else {
    p.side_b = e.r.indices(e.value[1], k + "[1]", e.known);
  }
  for (int x : p.side_b) {
    if (std::count(p.side_a.begin(), p.side_a.end(), x)) e.r.fail(k, "node " + std::to_string(x) + " is on both sides");
  }
  e.until_key = "heal_at";
  if (e.yaml["heal_at"]) e.until = e.r.duration(e.yaml["heal_at"], e.key + ".heal_at");
  if (e.yaml["one_way"]) p.one_way = e.r.text(e.yaml["one_way"], e.key + ".one_way") == "true";
}

void apply(World& w, int index, const Fault& f, const Partition& p) {
  Cut c;
  c.fault = index;
  c.heal_at = f.until;
  c.a.assign(w.nodes_.size(), 0);
  c.b.assign(w.nodes_.size(), 0);
  for (int n : p.side_a) c.a[n] = 1;
  for (int n : p.side_b) c.b[n] = 1;
  c.b_is_rest = p.b_is_rest;
  c.one_way = p.one_way;
  w.cuts_.push_back(std::move(c));
}

void end(World& w, int index, const Fault&, const Partition&) {
  std::erase_if(w.cuts_, [&](const Cut& c) { return c.fault == index; });
}

// --- loss, latency, bandwidth: the links (or those of some nodes) change until `until` --------------

void end_link_fault(World& w, int index) {
  std::erase_if(w.link_faults_, [&](const LinkFault& l) { return l.fault == index; });
}

void parse(Entry& e, Loss& l) {
  l.fraction = e.r.fraction(e.value, e.value_key);
  e.link_keys(l.nodes);
}

void apply(World& w, int index, const Fault&, const Loss& l) {
  w.link_faults_.push_back({index, l.nodes, [fraction = l.fraction](LinkSpec& s) { s.loss = fraction; }});
}

void end(World& w, int index, const Fault&, const Loss&) { end_link_fault(w, index); }

void parse(Entry& e, Latency& l) {
  l.latency = e.r.duration(e.value, e.value_key);
  e.link_keys(l.nodes);
}

void apply(World& w, int index, const Fault&, const Latency& l) {
  w.link_faults_.push_back({index, l.nodes, [latency = l.latency](LinkSpec& s) { s.latency = latency; }});
}

void end(World& w, int index, const Fault&, const Latency&) { end_link_fault(w, index); }

void parse(Entry& e, Bandwidth& b) {
  b.bytes_per_second = e.r.bandwidth(e.value, e.value_key);
  e.link_keys(b.nodes);
}

void apply(World& w, int index, const Fault&, const Bandwidth& b) {
  w.link_faults_.push_back({index, b.nodes, [bytes = b.bytes_per_second](LinkSpec& s) { s.bandwidth = bytes; }});
}

void end(World& w, int index, const Fault&, const Bandwidth&) { end_link_fault(w, index); }

// --- skew: the nodes' clocks jump by D, or drift by it over T ---------------------------------------

void parse(Entry& e, Skew& s) {
  // "skew: 2s" or "skew: -2s".
  const std::string text = e.r.text(e.value, e.value_key);
  const bool negative = !text.empty() && text[0] == '-';
  s.by = e.r.duration(negative ? text.substr(1) : text, e.value_key);
  if (negative) s.by = -s.by;
  e.allowed.insert({"nodes", "over"});
  if (!e.yaml["nodes"]) e.r.fail(e.key + ".nodes", "missing: whose clocks are skewed");
  if (e.yaml["over"]) {
    s.over = e.r.duration(e.yaml["over"], e.key + ".over");
    // A drift as fast as the clock itself would stop it or run it backwards.
    if (s.over <= (s.by < Nanos(0) ? -s.by : s.by)) {
      e.r.fail(e.key + ".over", "must be longer than the skew (a clock that drifts keeps running forwards)");
    }
  }
  s.nodes = e.nodes("nodes");
}

void apply(World& w, int, const Fault& f, const Skew& s) {
  for (int n : s.nodes) {
    if (s.over == Nanos(0)) {
      w.nodes_[n]->skew += s.by;
    } else {
      w.nodes_[n]->drifts.push_back({f.at, s.by, s.over});
    }
  }
}

void end(World&, int, const Fault&, const Skew&) {}  // the device's clock keeps its skew

// --- the dispatch ------------------------------------------------------------------------------------

// Calls `each.template operator()<Kind>()` for every fault kind, in FaultKind's order.
template <typename Each, std::size_t... I>
void each_kind(Each&& each, std::index_sequence<I...>) {
  (each.template operator()<std::variant_alternative_t<I, FaultKind>>(), ...);
}
template <typename Each>
void each_kind(Each&& each) {
  each_kind(each, std::make_index_sequence<std::variant_size_v<FaultKind>>());
}

// "crash, restart, ... or skew"
std::string kind_list() {
  std::vector<std::string> keys;
  each_kind([&]<typename Kind>() { keys.push_back(Kind::key); });
  std::string list;
  for (std::size_t i = 0; i < keys.size(); i++) list += (i == 0 ? "" : i + 1 == keys.size() ? " or " : ", ") + keys[i];
  return list;
}

}  // namespace

Fault read_fault(const Reader& r, const YAML::Node& n, const std::string& key, int& known) {
  if (!n.IsMap()) r.fail(key, "expected a mapping such as {at: 120s, crash: 2}");
  if (!n["at"]) r.fail(key + ".at", "missing: when the fault happens");
  Fault f;
  f.where = key;
  f.at = r.duration(n["at"], key + ".at");
  std::string kind;
  void (*parse_kind)(Entry&, Fault&) = nullptr;
  each_kind([&]<typename Kind>() {
    if (!n[Kind::key]) return;
    if (!kind.empty()) r.fail(key, "one fault per entry: both '" + kind + "' and '" + Kind::key + "'");
    kind = Kind::key;
    parse_kind = [](Entry& e, Fault& into) {
      Kind k;
      parse(e, k);
      into.what = std::move(k);
    };
  });
  if (kind.empty()) r.fail(key, "no fault (" + kind_list() + ")");
  Entry e{r, n, n[kind], key, key + "." + kind, known, {"at", kind}, std::nullopt};
  parse_kind(e, f);
  r.only_keys(n, key, e.allowed);
  f.until = e.until;
  if (f.until && *f.until <= f.at) r.fail(key + "." + e.until_key, "must come after 'at'");
  return f;
}

void World::fault_starts(int index) {
  const Fault& f = scenario_.faults[index];
  trace("fault", index, 0, f.where);
  std::visit([&](const auto& kind) { apply(*this, index, f, kind); }, f.what);
  disturbed();
}

void World::fault_ends(int index) {
  const Fault& f = scenario_.faults[index];
  trace("fault_end", index, 0, f.where);
  std::visit([&](const auto& kind) { end(*this, index, f, kind); }, f.what);
  disturbed();
}

}  // namespace troupe::sim
