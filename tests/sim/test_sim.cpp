// The deterministic network simulator: runs are reproducible, each fault does what it says and
// the mesh survives it, and the invariant checker catches a deliberately broken protocol.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <utility>
#include <variant>

#include "support/process.hpp"
#include "troupe/model/error.hpp"
#include "troupe/protocol/wire.hpp"
#include "troupe/sim/simulator.hpp"

using namespace troupe;
using namespace troupe::sim;

namespace {

// Four small devices sharing a small model; `extra` adds keys (faults, network) to the YAML.
Scenario small(const std::string& extra, const std::string& network = "{latency: 2ms, jitter: 1ms, loss: 0.5%}") {
  return parse_scenario(
      "seed: 1\n"
      "duration: 60s\n"
      "model: {shape: stories110m, type: q8_0}\n"
      "nodes:\n"
      "  - {count: 3, profile: rpi4}\n"
      "  - {count: 1, profile: laptop}\n"
      "network: " + network + "\n"
      "workload: {sessions: 6, prompt_tokens: 8, gen_tokens: 24, arrival: every 6s from 5s}\n"
      "expect: {converge_within: 20s}\n" + extra,
      "test.yaml");
}

std::string violations(const Summary& s) {
  std::string out;
  for (const auto& v : s.violations) out += v + "\n";
  return out;
}

void require_clean(const Summary& s) {
  INFO(violations(s));
  CHECK(s.violations.empty());
  CHECK(s.sessions_completed + s.sessions_failed == s.sessions);
  CHECK(s.sessions_completed == s.sessions);
  CHECK(s.initial_convergence_seconds > 0);
}

}  // namespace

TEST_CASE("the same seed gives the same run, another seed another run", "[sim]") {
  const Scenario s = small("faults:\n  - {at: 20s, crash: 1}\n  - {at: 35s, restart: crashed}\n");
  const Summary a = simulate(s, 1), b = simulate(s, 1), c = simulate(s, 2);
  CHECK(a.trace_hash == b.trace_hash);
  CHECK(a.events == b.events);
  CHECK(a.sim_seconds == b.sim_seconds);
  CHECK(a.frames == b.frames);
  CHECK(a.frames_lost == b.frames_lost);
  CHECK(a.worst_convergence_seconds == b.worst_convergence_seconds);
  CHECK(a.violations == b.violations);
  CHECK(a.trace_hash != c.trace_hash);
  require_clean(a);
  require_clean(c);
}

TEST_CASE("a crashed coordinator is replaced and sessions finish with the undisturbed answer", "[sim]") {
  const Summary s = simulate(small("faults:\n  - {at: 20s, crash: [0]}\n"), 1);
  require_clean(s);
  CHECK(s.coordinator_changes >= 2);
  CHECK(s.worst_convergence_seconds > 0);
}

// Three equal devices hold 4 layers each; the middle one goes for good while an answer runs
// through it, and the new plan gives the others 6 each. Both keep the keys and values of the
// layers they held (resume_plan.hpp), and the answer is the undisturbed one.
TEST_CASE("a stage gone for good mid-answer: the others resume the session on their moved layers", "[sim]") {
  const Summary s = simulate(parse_scenario(
                                 "seed: 1\n"
                                 "duration: 90s\n"
                                 "model: {shape: stories110m, type: q8_0}\n"
                                 "nodes:\n"
                                 "  - {count: 3, profile: rpi4}\n"
                                 "network: {latency: 2ms, jitter: 1ms, loss: 0.5%}\n"
                                 "workload: {sessions: 4, prompt_tokens: 40, gen_tokens: 120, arrival: every 5s from 5s}\n"
                                 "expect: {converge_within: 20s}\n"
                                 "faults:\n"
                                 "  - {at: 14s, crash: [1]}\n",
                                 "gone.yaml"),
                             1);
  require_clean(s);
  CHECK(s.sessions_resumed >= 2);  // both survivors kept the session in flight
  CHECK(s.positions_kept >= 2 * 40);
}

// Once failed a session: the restarted entry named its first session as its earlier life had,
// and the stages, which remember ended sessions, dropped it as long over.
TEST_CASE("a restarted node rejoins with its state lost", "[sim]") {
  const Summary s = simulate(small("faults:\n  - {at: 15s, crash: [1, 2]}\n  - {at: 30s, restart: crashed}\n"), 1);
  require_clean(s);
}

TEST_CASE("a node leaves gracefully and another joins", "[sim]") {
  const Summary leave = simulate(small("faults:\n  - {at: 20s, leave: [2]}\n"), 1);
  require_clean(leave);
  const Summary join = simulate(small("faults:\n  - {at: 20s, join: 2, profile: rpi5}\n"), 1);
  require_clean(join);
  CHECK(join.nodes == 6);
}

TEST_CASE("both sides of a partition elect a coordinator, and one remains after it heals", "[sim]") {
  const Summary s = simulate(small("faults:\n  - {at: 15s, partition: [[0, 1], rest], heal_at: 35s}\n"), 1);
  require_clean(s);
  CHECK(s.coordinator_changes >= 2);
  const Summary one_way = simulate(small("faults:\n  - {at: 15s, partition: [[0], [1, 2]], one_way: true, heal_at: 35s}\n"), 1);
  require_clean(one_way);
}

TEST_CASE("heavy loss, slow links and skewed clocks are survived", "[sim]") {
  const Summary calm = simulate(small(""), 1);
  require_clean(calm);
  const Summary loss = simulate(small("faults:\n  - {at: 15s, loss: 40%, until: 30s}\n"), 1);
  require_clean(loss);
  CHECK(loss.frames_lost > calm.frames_lost);
  const Summary latency = simulate(small("faults:\n  - {at: 15s, latency: 200ms, until: 30s}\n"), 1);
  require_clean(latency);
  const Summary bandwidth = simulate(small("faults:\n  - {at: 15s, bandwidth: 1Mbit, until: 30s}\n"), 1);
  require_clean(bandwidth);
  const Summary skew = simulate(small("faults:\n  - {at: 15s, skew: 5s, nodes: [0, 3]}\n"), 1);
  require_clean(skew);
  CHECK(skew.trace_hash != calm.trace_hash);
}

TEST_CASE("a link fault can hit only the links of some nodes", "[sim]") {
  const Summary calm = simulate(small(""), 1);
  const Summary some = simulate(small("faults:\n  - {at: 15s, loss: 30%, until: 35s, nodes: [3]}\n"), 1);
  const Summary all = simulate(small("faults:\n  - {at: 15s, loss: 30%, until: 35s}\n"), 1);
  require_clean(some);
  require_clean(all);
  // Node 3's links are 6 of the 12 directed links between the 4 nodes.
  CHECK(some.frames_lost > calm.frames_lost);
  CHECK(some.frames_lost < all.frames_lost);
  const Summary slow = simulate(small("faults:\n  - {at: 15s, latency: 300ms, until: 35s, nodes: [0]}\n"), 1);
  require_clean(slow);
  CHECK(slow.trace_hash != calm.trace_hash);
}

TEST_CASE("a clock that drifts is survived, and differs from one that jumps", "[sim]") {
  const Summary jump = simulate(small("faults:\n  - {at: 15s, skew: 5s, nodes: [0, 3]}\n"), 1);
  const Summary drift = simulate(small("faults:\n  - {at: 15s, skew: 5s, over: 20s, nodes: [0, 3]}\n"), 1);
  const Summary back = simulate(small("faults:\n  - {at: 15s, skew: -5s, over: 20s, nodes: [1]}\n"), 1);
  require_clean(drift);
  require_clean(back);
  CHECK(drift.trace_hash != jump.trace_hash);
  CHECK_THROWS_WITH(parse_scenario("nodes: [{count: 2, profile: rpi4}]\nfaults: [{at: 5s, skew: 2s, over: 1s, nodes: [0]}]\n",
                                   "bad.yaml"),
                    Catch::StartsWith("bad.yaml: faults[0].over: must be longer than the skew"));
}

TEST_CASE("peers of a crashed process hear of it from their connections, but not across a cut", "[sim]") {
  test::TempDir dir;
  auto lines = [](const std::string& path, const std::string& what) {
    std::vector<std::string> out;
    std::FILE* f = std::fopen(path.c_str(), "r");
    REQUIRE(f);
    char line[4096];
    while (std::fgets(line, sizeof line, f)) {
      if (std::string(line).find(" " + what + " ") != std::string::npos) out.push_back(line);
    }
    std::fclose(f);
    return out;
  };
  Options crash_trace;
  crash_trace.trace_path = dir / "crash.trace";
  require_clean(simulate(small("faults:\n  - {at: 20s, crash: [1]}\n"), 1, crash_trace));
  const auto heard = lines(crash_trace.trace_path, "connection_lost");
  REQUIRE(heard.size() == 3);  // every other node had gossiped with it
  for (const auto& l : heard) {
    CHECK(l.rfind("20.00", 0) == 0);  // one latency (2 ms ± 1) after the crash
    CHECK(l.find(" 1\n") != std::string::npos);
  }
  Options cut_trace;
  cut_trace.trace_path = dir / "cut.trace";
  simulate(small("faults:\n  - {at: 15s, partition: [[1], rest], heal_at: 40s}\n  - {at: 20s, crash: [1]}\n"), 1, cut_trace);
  CHECK(lines(cut_trace.trace_path, "connection_lost").empty());
}

TEST_CASE("duplicated and reordered frames are survived", "[sim]") {
  const Summary s = simulate(small("", "{latency: 5ms, jitter: 4ms, loss: 2%, duplicate: 5%, reorder: 5%}"), 1);
  require_clean(s);
}

TEST_CASE("the issue's example scenario passes", "[sim]") {
  const Scenario s = load_scenario(TROUPE_SOURCE_DIR "/examples/sim/issue-example.yaml");
  // Seed 30 once failed a session: a stage that had moved took another node's place in the
  // route (stage_actor.cpp matched its place by layers alone). Seeds 4 and 40 failed sessions
  // with "busy: 64 sessions": stages kept sessions whose end overtook their start, and sessions
  // re-routed away from a stage that was only suspected.
  for (uint64_t seed : {s.seed, uint64_t(30), uint64_t(4), uint64_t(40)}) {
    const Summary r = simulate(s, seed);
    INFO("seed " << seed << "\n" << violations(r));
    CHECK(r.ok());
    CHECK(r.sessions == 30);
    CHECK(r.sessions_completed == 30);
    CHECK(r.nodes == 11);
  }
}

TEST_CASE("a hundred nodes joining at once, each through another newcomer, form one mesh", "[sim]") {
  const Scenario s = parse_scenario(
      "duration: 60s\n"
      "model: {shape: stories110m, type: q8_0}\n"
      "nodes: [{count: 2, profile: rpi4}]\n"
      "network: {latency: 3ms, jitter: 1ms, loss: 0.5%}\n"
      "workload: {sessions: 4, prompt_tokens: 8, gen_tokens: 16, arrival: every 10s from 20s}\n"
      "faults: [{at: 1s, join: 100, profile: rpi4}]\n"
      "expect: {converge_within: 10s}\n",
      "burst.yaml");
  // With seed 5, node 3 never heard back from node 2, its join address; the 70 nodes that joined through node 3
  // then made a mesh of their own, with its own coordinator, for good: a member asked its join
  // address again only while it knew nobody, and it knew those that joined through it.
  const Summary r = simulate(s, 5);
  INFO(violations(r));
  CHECK(r.ok());
  CHECK(r.sessions_completed == 4);
}

TEST_CASE("a hundred nodes started at once, each joining a random one before it, keep one coordinator a term", "[sim]") {
  const Scenario s = parse_scenario(
      "duration: 60s\n"
      "model: {shape: stories110m, type: q8_0}\n"
      "nodes: [{count: 100, profile: laptop}]\n"
      "join: random\n"
      "network: {latency: 2ms, jitter: 1ms}\n"
      "workload: {sessions: 4, prompt_tokens: 8, gen_tokens: 16, arrival: every 10s from 20s}\n"
      "expect: {converge_within: 20s}\n",
      "random-joins.yaml");
  CHECK(s.join == StartJoin::random_earlier);
  for (const uint64_t seed : {1, 5}) {
    const Summary r = simulate(s, seed);
    INFO("seed " << seed << "\n" << violations(r));
    CHECK(r.ok());
    CHECK(r.sessions_completed == 4);
    // Groups that formed apart claimed terms of their own; reaching each other, two coordinators
    // of one term resolve by ballot order within a probe or sync round (over 10 s: a violation).
    CHECK(r.coordinator_changes > 1);
    CHECK(r.longest_split_seconds < 1.0);
  }
}

TEST_CASE("a stage that drops a session for a member its entry still trusts tells the entry", "[sim]") {
  // Seed 2 of flaky-wifi.yaml: the entry re-routed through a laptop it had just seen refute a
  // suspicion, while the next stage declared that laptop dead and dropped the session silently;
  // the entry waited 120 s for tokens that never came, and the session failed.
  const Scenario s = load_scenario(TROUPE_SOURCE_DIR "/examples/sim/flaky-wifi.yaml");
  // Seeds 13, 15 and 16 once failed sessions too: stages dropped the sessions of an entry that
  // was only suspected (its link busy), and the entry never heard.
  for (uint64_t seed : {2, 13, 15, 16}) {
    const Summary r = simulate(s, seed);
    INFO("seed " << seed << "\n" << violations(r));
    CHECK(r.ok());
    CHECK(r.sessions_completed == r.sessions);
  }
}

TEST_CASE("a protocol that follows earlier terms is caught", "[sim]") {
  const Scenario s = small("faults:\n  - {at: 15s, partition: [[0, 1], rest], heal_at: 35s}\n");
  Options broken;
  broken.broken_variants = {discovery::BrokenVariant::accept_any_term};
  const Summary r = simulate(s, 1, broken);
  REQUIRE_FALSE(r.ok());
  CHECK(violations(r).find("went back from term") != std::string::npos);
}

TEST_CASE("bad scenario files name the file and the key", "[sim]") {
  auto message = [](const std::string& yaml) {
    try {
      parse_scenario(yaml, "bad.yaml");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const std::string nodes = "nodes: [{count: 2, profile: rpi4}]\n";
  CHECK(message(nodes + "duration: 10 parsecs\n").rfind("bad.yaml: duration: expected a duration", 0) == 0);
  CHECK(message(nodes + "duration: ten\n").rfind("bad.yaml: duration: ", 0) == 0);
  CHECK(message(nodes + "colour: red\n").rfind("bad.yaml: colour: unknown key", 0) == 0);
  CHECK(message(nodes + "join: sideways\n").rfind("bad.yaml: join: expected first or random", 0) == 0);
  CHECK(message("nodes: [{count: 2, profile: toaster}]\n").rfind("bad.yaml: nodes[0].profile: unknown device profile 'toaster'", 0) == 0);
  CHECK(message(nodes + "model: {shape: gpt5}\n").rfind("bad.yaml: model.shape:", 0) == 0);
  CHECK(message(nodes + "faults: [{at: 5s, crash: [7]}]\n").rfind("bad.yaml: faults[0].crash[0]: no node 7", 0) == 0);
  CHECK(message(nodes + "faults: [{at: 5s, partition: [[0], rest], heal_at: 2s}]\n").rfind("bad.yaml: faults[0].heal_at:", 0) == 0);
  CHECK(message(nodes + "faults: [{at: 5s}]\n").rfind("bad.yaml: faults[0]: no fault", 0) == 0);
  CHECK(message(nodes + "network: {loss: 120%}\n").rfind("bad.yaml: network.loss:", 0) == 0);
  CHECK(message(nodes + "workload: {arrival: sometimes}\n").rfind("bad.yaml: workload.arrival:", 0) == 0);
  CHECK(message("nodes: [[\n").rfind("bad.yaml: line ", 0) == 0);
  CHECK(message(nodes) == "accepted");
}

TEST_CASE("troupe sim prints the same summary but the wall keys, exits 1 on a violation and 2 on bad input", "[sim]") {
  const std::string example = TROUPE_SOURCE_DIR "/examples/sim/partition-heal.yaml";
  auto summary = [&](const std::string& seed) {
    const auto r = test::run_troupe({"sim", example, "--seed", seed, "--json"});
    REQUIRE(r.exit_code == 0);
    auto j = nlohmann::ordered_json::parse(r.out);
    for (auto it = j.begin(); it != j.end();) it = it.key().rfind("wall", 0) == 0 ? j.erase(it) : std::next(it);
    return j.dump();
  };
  const std::string a = summary("5");
  CHECK(a == summary("5"));
  CHECK(a != summary("6"));

  test::TempDir dir;
  {
    std::FILE* f = std::fopen((dir / "bad.yaml").c_str(), "w");
    std::fputs("nodes: [{count: 2, profile: rpi4}]\nfaults: [{at: 1s, crash: [5]}]\n", f);
    std::fclose(f);
  }
  const auto bad = test::run_troupe({"sim", dir / "bad.yaml"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err == "troupe: " + (dir / "bad.yaml") + ": faults[0].crash[0]: no node 5 (2 nodes by then)\n");
  const auto missing = test::run_troupe({"sim", dir / "none.yaml"});
  CHECK(missing.exit_code == 2);
  CHECK(test::run_troupe({"sim", example, "--seeds", "3..x"}).exit_code == 2);

  // No mesh re-plans within a millisecond of a crash: every seed breaks the expectation.
  {
    std::FILE* f = std::fopen((dir / "strict.yaml").c_str(), "w");
    std::fputs("duration: 20s\nmodel: {shape: stories15m}\nnodes: [{count: 3, profile: rpi4}]\n"
               "faults: [{at: 4s, crash: [1]}]\nexpect: {converge_within: 1ms}\n", f);
    std::fclose(f);
  }
  const auto strict = test::run_troupe({"sim", dir / "strict.yaml", "--seeds", "1..2"});
  CHECK(strict.exit_code == 1);
  CHECK(strict.out.find("failing seeds: 1 2") != std::string::npos);
}


namespace {

// The one fault of "faults: [FAULT]" on six rpi4s, as its kind's struct.
template <typename Kind>
Kind read_one(const std::string& fault, Fault* common = nullptr) {
  const Scenario s = parse_scenario("nodes: [{count: 6, profile: rpi4}]\nfaults: [" + fault + "]\n", "one.yaml");
  REQUIRE(s.faults.size() == 1);
  REQUIRE(std::holds_alternative<Kind>(s.faults[0].what));
  if (common) *common = s.faults[0];
  return std::get<Kind>(s.faults[0].what);
}

}  // namespace

TEST_CASE("each fault kind is read into its own struct, with the common time, end and label", "[sim]") {
  using std::chrono::milliseconds, std::chrono::seconds;
  Fault f;
  const Crash crash = read_one<Crash>("{at: 3s, crash: 2}", &f);
  CHECK(crash.who.count == 2);
  CHECK(crash.who.nodes.empty());
  CHECK(f.at == seconds(3));
  CHECK_FALSE(f.until);
  CHECK(f.where == "faults[0]");
  CHECK(read_one<Crash>("{at: 3s, crash: [4, 1]}").who.nodes == std::vector<int>{4, 1});
  CHECK(read_one<Restart>("{at: 3s, restart: crashed}").crashed);
  const Restart restart = read_one<Restart>("{at: 3s, restart: [2]}");
  CHECK_FALSE(restart.crashed);
  CHECK(restart.nodes == std::vector<int>{2});
  CHECK(read_one<Leave>("{at: 3s, leave: 1}").who.count == 1);
  CHECK(read_one<Leave>("{at: 3s, leave: [5]}").who.nodes == std::vector<int>{5});
  const Join join = read_one<Join>("{at: 3s, join: 4, profile: laptop}");
  CHECK(join.count == 4);
  CHECK(join.profile == "laptop");

  const Partition cut = read_one<Partition>("{at: 3s, partition: [[0, 1], rest], heal_at: 9s}", &f);
  CHECK(cut.side_a == std::vector<int>{0, 1});
  CHECK(cut.b_is_rest);
  CHECK_FALSE(cut.one_way);
  CHECK(f.until == seconds(9));  // heal_at is the partition's end
  const Partition one_way = read_one<Partition>("{at: 3s, partition: [[0], [2, 3]], one_way: true}", &f);
  CHECK(one_way.side_b == std::vector<int>{2, 3});
  CHECK_FALSE(one_way.b_is_rest);
  CHECK(one_way.one_way);
  CHECK_FALSE(f.until);  // never heals

  const Loss loss = read_one<Loss>("{at: 3s, loss: 30%, until: 5s, nodes: [4]}", &f);
  CHECK(loss.fraction == Approx(0.3));
  CHECK(loss.nodes == std::vector<int>{4});
  CHECK(f.until == seconds(5));
  const Latency latency = read_one<Latency>("{at: 3s, latency: 250ms}");
  CHECK(latency.latency == milliseconds(250));
  CHECK(latency.nodes.empty());
  CHECK(read_one<Bandwidth>("{at: 3s, bandwidth: 8Mbit, until: 4s}").bytes_per_second == Approx(1e6));

  const Skew jump = read_one<Skew>("{at: 3s, skew: 2s, nodes: [1]}");
  CHECK(jump.by == seconds(2));
  CHECK(jump.over == seconds(0));
  CHECK(jump.nodes == std::vector<int>{1});
  const Skew drift = read_one<Skew>("{at: 3s, skew: -2s, over: 10s, nodes: [0, 5]}");
  CHECK(drift.by == seconds(-2));
  CHECK(drift.over == seconds(10));
}

TEST_CASE("an entry without a fault is told every fault kind's key", "[sim]") {
  std::string message;
  try {
    parse_scenario("nodes: [{count: 2, profile: rpi4}]\nfaults: [{at: 5s, crush: 1}]\n", "bad.yaml");
  } catch (const InputError& e) {
    message = e.what();
  }
  CHECK(message.rfind("bad.yaml: faults[0]: no fault (crash, restart, ", 0) == 0);
  auto listed = [&]<std::size_t... I>(std::index_sequence<I...>) {
    return (... && (message.find(std::variant_alternative_t<I, FaultKind>::key) != std::string::npos));
  };
  CHECK(listed(std::make_index_sequence<std::variant_size_v<FaultKind>>()));
  // One kind per entry; the keys a kind does not take are refused, naming those it does.
  auto refused = [](const std::string& fault) {
    try {
      parse_scenario("nodes: [{count: 2, profile: rpi4}]\nfaults: [" + fault + "]\n", "bad.yaml");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(refused("{at: 5s, loss: 1%, latency: 2ms}") == "bad.yaml: faults[0]: one fault per entry: both 'loss' and 'latency'");
  CHECK(refused("{at: 5s, crash: 1, until: 9s}") == "bad.yaml: faults[0].until: unknown key (expected one of: at, crash)");
  CHECK(refused("{at: 5s, skew: 1s, nodes: [0], until: 9s}") ==
        "bad.yaml: faults[0].until: unknown key (expected one of: at, nodes, over, skew)");
  CHECK(refused("{at: 5s, latency: 2ms, until: 5s}") == "bad.yaml: faults[0].until: must come after 'at'");
}
