// What one member gone bad (buggy, compromised or old, but holding the mesh secret) can do to the
// others through the mesh protocol's state machines, and a fast restart at the same address:
// each case sends the frames /work/shared/repro's programs send, from outside the bus.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "bus.hpp"
#include "troupe/discovery/bounds.hpp"
#include "troupe/discovery/session.hpp"

using namespace troupe;
using namespace troupe::discovery;
using namespace std::chrono_literals;
using testing::Bus;

namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
const std::string kOutsider = "h:66";  // the member gone bad: never on the bus itself

wire::Gossip rumour(std::vector<wire::MemberUpdate> updates, uint64_t term = 0, const std::string& coordinator = {}) {
  wire::Gossip g;
  g.kind = wire::Gossip::Kind::sync_reply;
  g.from = kOutsider;
  g.term = term;
  g.coordinator = coordinator;
  g.updates = std::move(updates);
  return g;
}

// A member that does not exist, claiming to be fast: a planner would give it every layer.
wire::MemberUpdate invented(const Bus& bus, int i) {
  wire::MemberInfo info = bus.nodes.at("h:1")->membership().self();
  info.name = "ghost" + std::to_string(i);
  info.address = "h:" + std::to_string(200 + i);
  info.instance = 7;
  info.throughput = 1000;
  info.layers.reset();
  return {info, wire::MemberState::alive, 1, {}};
}

bool holds_stage(const Mesh& mesh, const std::string& address) {
  const auto& stages = mesh.plan().stages;
  return std::any_of(stages.begin(), stages.end(), [&](const auto& s) { return s.address == address; });
}

bool same_plan(const wire::PlanAnnounce& a, const wire::PlanAnnounce& b) {
  return a.term == b.term && a.coordinator == b.coordinator && a.version == b.version && a.stages == b.stages &&
         a.problem == b.problem;
}

bool warned(Mesh& mesh, const std::string& part) {
  const auto warnings = mesh.take_warnings();
  return std::any_of(warnings.begin(), warnings.end(), [&](const auto& w) { return w.find(part) != std::string::npos; });
}

}  // namespace

TEST_CASE("counters are bounded: past the cap they are refused, and a value below it plus one cannot wrap", "[discovery][bounds]") {
  CHECK(counter_problem("term", kMax, std::nullopt) == "term 18446744073709551615 is past the cap of 2^62");
  CHECK_FALSE(counter_problem("term", kCounterCap, std::nullopt).empty());
  CHECK(counter_problem("term", kCounterCap - 1, std::nullopt).empty());
  CHECK(counter_problem("term", 5 + kMaxJump, 5).empty());
  CHECK(counter_problem("term", 6 + kMaxJump, 5) == "term " + std::to_string(6 + kMaxJump) + " jumps too far past 5");
  CHECK(counter_problem("term", 1, 5).empty());  // earlier: ignored by the rules, not refused
}

TEST_CASE("a plan or term at 2^64-1, or far past the mesh's, is refused and the real coordinator keeps the mesh",
          "[discovery][bounds]") {
  Bus bus;
  bus.start(3);
  bus.run(5s);
  REQUIRE(bus.coordinators() == std::vector<std::string>{"h:1"});
  const wire::PlanAnnounce before = bus.nodes["h:2"]->plan();
  const uint64_t term = before.term;
  // hijack_plan.py: the real coordinator's name, term and version 2^64-1, every layer elsewhere.
  wire::PlanAnnounce hijack{kMax, "h:1", kMax, {{"x", kOutsider, {0, 6}}}, ""};
  wire::PlanAnnounce far = hijack;  // under the cap, but a jump no election makes
  far.term = term + 2 * kMaxJump;
  far.version = before.version + 1;
  for (const auto& [address, node] : bus.nodes) {
    bus.inject(address, hijack);
    bus.inject(address, far);
    bus.inject(address, rumour({}, kMax, kOutsider));
  }
  bus.run(100ms);
  CHECK(warned(*bus.nodes["h:2"], "past the cap of 2^62"));
  bus.run(5s);
  CHECK(bus.coordinators() == std::vector<std::string>{"h:1"});
  for (const auto& [address, node] : bus.nodes) {
    INFO(address);
    CHECK(node->leadership().term == term);
    CHECK(node->leadership().coordinator == "h:1");
    CHECK(node->plan().stages == before.stages);
    CHECK(node->plan().version < before.version + 10);
    CHECK(node->route().size() == 3);
  }
}

TEST_CASE("a plan in the coordinator's own name that it did not make is answered with its own", "[discovery][bounds]") {
  Bus bus;
  bus.start(3);
  bus.run(5s);
  const wire::PlanAnnounce before = bus.nodes["h:1"]->plan();
  // Within the bounds: every layer on h:2, in h:1's term at a later version.
  wire::PlanAnnounce forged{before.term, "h:1", before.version + 5, {{"n2", "h:2", {0, 6}}}, ""};
  for (const auto& [address, node] : bus.nodes) bus.inject(address, forged);
  bus.run(3s);
  for (const auto& [address, node] : bus.nodes) {
    INFO(address);
    CHECK(node->plan().stages == before.stages);
    CHECK(node->plan().version > forged.version);
    CHECK(node->route().size() == 3);
  }
}

TEST_CASE("a coordinator restarted at its address within a second: the mesh agrees on one term and plan again", "[discovery][mesh]") {
  Bus bus;
  bus.start(3);
  bus.run(5s);
  bus.add("h:4", {"h:1"});  // a re-plan: the plan's version is past 1
  bus.run(3s);
  REQUIRE(bus.coordinators() == std::vector<std::string>{"h:1"});
  const uint64_t term = bus.nodes["h:2"]->leadership().term;
  REQUIRE(bus.nodes["h:2"]->plan().version > 1);
  // The new process hears its earlier life's ballot from the others before it could claim one:
  // followed as its own, its plans (numbered from 1) would lose to the earlier life's. It claims
  // the next term instead, or another member does, the earlier process being gone.
  bus.down.insert("h:1");
  bus.run(100ms);
  bus.add("h:1", {"h:2"}, 2);
  bus.run(5s);
  const auto coordinators = bus.coordinators();
  REQUIRE(coordinators.size() == 1);
  const wire::PlanAnnounce& plan = bus.nodes[coordinators[0]]->plan();
  CHECK(plan.term > term);
  CHECK(plan.stages.size() == 4);
  for (const auto& [address, node] : bus.nodes) {
    INFO(address);
    CHECK(same_plan(node->plan(), plan));
    CHECK(node->route().size() == 4);
  }
}

TEST_CASE("a plan that does not fit the model, or names members never verified, is not followed", "[discovery][plan]") {
  Bus bus;
  bus.start(3);
  bus.run(5s);
  const wire::PlanAnnounce before = bus.nodes["h:3"]->plan();
  auto later = [&](std::vector<wire::PlanStage> stages, std::string problem = {}) {
    return wire::PlanAnnounce{before.term + 1, "h:2", before.version + 1, std::move(stages), std::move(problem)};
  };
  SECTION("layers the model lacks") {
    bus.inject("h:3", later({{"n1", "h:1", {0, 3}}, {"n2", "h:2", {3, 9}}}));
    bus.run(50ms);
    CHECK(warned(*bus.nodes["h:3"], "is outside the model's 6 layers"));
  }
  SECTION("two stages for one layer") {
    bus.inject("h:3", later({{"n1", "h:1", {0, 4}}, {"n2", "h:2", {3, 6}}}));
    bus.run(50ms);
    CHECK(warned(*bus.nodes["h:3"], "overlaps another"));
  }
  SECTION("a gap in a plan said to be complete") {
    bus.inject("h:3", later({{"n1", "h:1", {0, 2}}, {"n2", "h:2", {3, 6}}}));
    bus.run(50ms);
    CHECK(warned(*bus.nodes["h:3"], "layers 2:3 are on no stage"));
  }
  SECTION("layers at the end left out") {
    bus.inject("h:3", later({{"n1", "h:1", {0, 4}}}));
    bus.run(50ms);
    CHECK(warned(*bus.nodes["h:3"], "layers 4:6 are on no stage"));
  }
  SECTION("a member this node never heard of") {
    bus.inject("h:3", later({{"n1", "h:1", {0, 3}}, {"x", "h:77", {3, 6}}}));
    bus.run(50ms);
  }
  CHECK(same_plan(bus.nodes["h:3"]->plan(), before));
  CHECK(bus.nodes["h:3"]->leadership().term == before.term);
  // A plan that leaves layers out while saying why is a plan, and is followed.
  bus.inject("h:3", later({{"n1", "h:1", {0, 4}}}, "the members' memory budgets hold 4 of the 6 layers"));
  bus.run(50ms);
  CHECK(bus.nodes["h:3"]->plan().version == before.version + 1);
}

TEST_CASE("a plan naming a member this node has not verified yet is held until it has", "[discovery][plan]") {
  Bus bus;
  bus.start(2);
  bus.run(5s);
  // h:3 joins through h:2 while h:1 cannot hear from it for a while: h:1, the coordinator,
  // verifies it later than h:2 does ... and the other way round: h:2 is told a plan naming h:3 by
  // the coordinator before it verified h:3 itself.
  bus.cut = [](const std::string& from, const std::string& to) { return from == "h:3" && to == "h:2"; };
  bus.add("h:3", {"h:1"});
  bus.run(3s);
  CHECK_FALSE(bus.verified("h:2", "h:3"));
  CHECK(holds_stage(*bus.nodes["h:1"], "h:3"));
  CHECK_FALSE(holds_stage(*bus.nodes["h:2"], "h:3"));  // held back
  bus.cut = [](auto&, auto&) { return false; };
  bus.run(2s);
  CHECK(bus.verified("h:2", "h:3"));
  CHECK(same_plan(bus.nodes["h:2"]->plan(), bus.nodes["h:1"]->plan()));
}

TEST_CASE("members invented in gossip get no layers, and are forgotten when they never answer", "[discovery][verification]") {
  Bus bus;
  bus.start(2);
  bus.run(5s);
  std::vector<wire::MemberUpdate> ghosts;
  for (int i = 0; i < 5; i++) ghosts.push_back(invented(bus, i));
  // fake_members.py: re-asserted alive, at a higher incarnation, every half second.
  for (int round = 0; round < 6; round++) {
    for (auto& g : ghosts) g.incarnation++;
    bus.inject("h:1", rumour(ghosts));
    bus.inject("h:2", rumour(ghosts));
    bus.run(500ms);
    for (const auto& [address, node] : bus.nodes) {
      INFO(address << " round " << round);
      CHECK(node->plan().stages.size() == 2);
      CHECK(node->route().size() == 2);
      CHECK(node->members().size() == 2);  // the view the hosts show: verified members only
      for (const auto& g : ghosts) {
        CHECK_FALSE(holds_stage(*node, g.info.address));
        CHECK_FALSE(node->membership().alive(g.info.address));
      }
    }
  }
  // An ack in a ghost's name with a guessed probe number verifies nothing.
  for (uint64_t probe = 0; probe < 64; probe++) {
    wire::Gossip ack;
    ack.kind = wire::Gossip::Kind::ack;
    ack.from = ack.target = ghosts[0].info.address;
    ack.probe = probe;
    ack.updates = {ghosts[0]};
    bus.inject("h:1", ack);
  }
  bus.run(3s);  // no more rumours: every try in vain, and they are forgotten
  for (const auto& [address, node] : bus.nodes) {
    INFO(address);
    CHECK(node->membership().members().size() == 1);
    CHECK(node->membership().candidates() == 0);
  }
  CHECK(bus.changes["h:1"].empty() == false);
  for (const auto& c : bus.changes["h:1"]) CHECK(c.address.rfind("h:2", 0) == 0);  // never reported a ghost
}

TEST_CASE("one sender introduces only so many new members, and candidates are bounded", "[discovery][verification]") {
  wire::MemberInfo self;
  self.name = "me";
  self.address = "h:1";
  self.model = "m";
  self.model_layers = 6;
  MembershipConfig config;
  Membership membership(self, config, 1);
  auto flood = [&](const std::string& from, int first, int n) {
    wire::Gossip g;
    g.kind = wire::Gossip::Kind::sync_reply;
    g.from = from;
    for (int i = first; i < first + n; i++) {
      wire::MemberInfo fake = self;
      fake.address = "10.0.0." + std::to_string(i) + ":7000";
      g.updates.push_back({fake, wire::MemberState::alive, 1, {}});
    }
    return g;
  };
  membership.receive(flood("h:2", 0, 100), TimePoint{});
  CHECK(membership.candidates() == config.verification.per_sender);
  CHECK(membership.live_addresses() == std::vector<std::string>{"h:1"});
  const auto warnings = membership.take_warnings();
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("introduces more new members than a node takes from one sender") != std::string::npos);
  membership.receive(flood("h:3", 100, 100), TimePoint{});
  membership.receive(flood("h:4", 200, 100), TimePoint{});
  CHECK(membership.candidates() == config.verification.max_pending);
  // Once the candidates were pinged in vain, newcomers take their places: a real node still joins.
  TimePoint t{};
  for (int i = 0; i < 40; i++) membership.tick(t += 50ms);
  membership.receive(flood("h:5", 300, 10), t);
  int newcomers = 0;
  for (int i = 300; i < 310; i++) newcomers += int(membership.members().count("10.0.0." + std::to_string(i) + ":7000"));
  CHECK(newcomers == 10);
  CHECK(membership.candidates() <= config.verification.max_pending);
}

TEST_CASE("a member declared dead in a later instance refutes it, and the others take it back", "[discovery][mesh]") {
  Bus bus;
  bus.start(3);
  bus.run(5s);
  const Member victim = bus.nodes["h:1"]->membership().members().at("h:2");
  // evict.py: "h:2 is dead, in a later instance", to every member, the victim included.
  wire::MemberInfo later = victim.info;
  later.instance++;
  for (const auto& [address, node] : bus.nodes) bus.inject(address, rumour({{later, wire::MemberState::dead, 0, {}}}));
  bus.run(3s);
  CHECK(bus.nodes["h:2"]->membership().self().instance == later.instance);
  for (const char* a : {"h:1", "h:3"}) {
    INFO(a);
    CHECK(bus.state_seen(a, "h:2") == wire::MemberState::alive);
    CHECK(bus.verified(a, "h:2"));
    CHECK(bus.nodes[a]->route().size() == 3);
  }
  // And a claim at its own instance, ahead of its incarnation.
  const uint64_t incarnation = bus.nodes["h:2"]->membership().incarnation();
  wire::MemberInfo same = bus.nodes["h:2"]->membership().self();
  for (const auto& [address, node] : bus.nodes) bus.inject(address, rumour({{same, wire::MemberState::dead, incarnation + 3, {}}}));
  bus.run(3s);
  CHECK(bus.nodes["h:2"]->membership().incarnation() > incarnation + 3);
  for (const char* a : {"h:1", "h:3"}) {
    INFO(a);
    CHECK(bus.state_seen(a, "h:2") == wire::MemberState::alive);
    CHECK(bus.nodes[a]->route().size() == 3);
  }
}

TEST_CASE("a later instance at an address replaces the earlier one at once, and the host hears it gone", "[discovery][mesh]") {
  Bus bus;
  bus.start(3);
  bus.run(5s);
  REQUIRE(bus.nodes["h:1"]->route().size() == 3);
  bus.changes.clear();
  // kill -9, and a new process at the same address within a second (a service manager's restart):
  // no probe of the old one fails for long enough to suspect it.
  bus.down.insert("h:3");
  bus.run(200ms);
  bus.add("h:3", {"h:1"}, 2);
  bus.run(600ms);
  for (const char* a : {"h:1", "h:2"}) {
    INFO(a);
    const auto& seen = bus.changes[a];
    auto gone = std::find_if(seen.begin(), seen.end(), [](const MemberChange& c) { return c.address == "h:3" && member_gone(c); });
    REQUIRE(gone != seen.end());
    CHECK(gone->replaced);
  }
  bus.run(3s);
  for (const char* a : {"h:1", "h:2"}) {
    INFO(a);
    CHECK(bus.nodes[a]->membership().members().at("h:3").info.instance == 2);
    CHECK(bus.state_seen(a, "h:3") == wire::MemberState::alive);
    CHECK(bus.nodes[a]->route().size() == 3);
  }
}

TEST_CASE("a mesh that has had neither a plan nor a stage says it is starting, then what is missing",
          "[discovery]") {
  Bus bus;
  Mesh& a = bus.add("h:1", {});
  CHECK(a.route_problem() == "starting: electing a coordinator");
  bus.add("h:2", {"h:1"});
  bus.run(5000ms);
  // Planned now; nothing is loaded on the bus, so the problem is the plan's, not "starting".
  CHECK(a.plan().version > 0);
  CHECK(a.route_problem().rfind("starting", 0) == std::string::npos);
}
