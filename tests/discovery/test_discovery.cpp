// The mesh protocol's state machines on their own: the planner as a pure function, and
// membership, election and planning of several Mesh objects exchanging frames over an in-test
// bus with a virtual clock (every frame is encoded and decoded, as on the wire).
#include <catch2/catch.hpp>

#include <algorithm>

#include "bus.hpp"
#include "troupe/discovery/planner.hpp"
#include "troupe/protocol/wire.hpp"

using namespace troupe;
using namespace troupe::discovery;
using namespace std::chrono_literals;

using testing::Bus;
using testing::cost;

namespace {

std::vector<LayerRange> ranges(const Plan& plan) {
  std::vector<LayerRange> out;
  for (const auto& s : plan.stages) out.push_back(s.layers);
  return out;
}

}  // namespace

TEST_CASE("the planner splits layers in proportion to throughput, in address order", "[discovery][plan]") {
  const Plan even = plan_stages({{"c", "h:3", 1, 0, 0, {}}, {"a", "h:1", 1, 0, 0, {}}, {"b", "h:2", 1, 0, 0, {}}},
                                cost(6));
  REQUIRE(even.complete);
  CHECK(ranges(even) == std::vector<LayerRange>{{0, 2}, {2, 4}, {4, 6}});
  CHECK(even.stages[0].name == "a");
  const Plan skewed = plan_stages({{"a", "h:1", 3, 0, 0, {}}, {"b", "h:2", 1, 0, 0, {}}}, cost(8));
  CHECK(ranges(skewed) == std::vector<LayerRange>{{0, 6}, {6, 8}});
  // Deterministic: the same members in another order give the same plan.
  const Plan again = plan_stages({{"b", "h:2", 1, 0, 0, {}}, {"a", "h:1", 3, 0, 0, {}}}, cost(8));
  CHECK(again.stages == skewed.stages);
  // A member whose share rounds to nothing gets no stage.
  const Plan tiny = plan_stages({{"a", "h:1", 100, 0, 0, {}}, {"b", "h:2", 1, 0, 0, {}}}, cost(4));
  CHECK(ranges(tiny) == std::vector<LayerRange>{{0, 4}});
}

TEST_CASE("the planner keeps every stage within its member's memory budget", "[discovery][plan]") {
  ModelCost c = cost(10, 100);
  c.embedding_bytes = 250;
  c.head_bytes = 250;
  // b holds at most 3 layers; a gets the rest even though b is faster.
  const Plan plan = plan_stages({{"a", "h:1", 1, 2000, 0, {}}, {"b", "h:2", 4, 300 + 250, 0, {}}}, c);
  REQUIRE(plan.complete);
  for (const auto& s : plan.stages) {
    if (s.name == "b") CHECK(s.layers.size() * 100 + 250 <= 550);
  }
  // A budget that holds no layer: no stage; the others still cover everything.
  const Plan small = plan_stages({{"a", "h:1", 1, 0, 0, {}}, {"tiny", "h:0", 50, 90, 0, {}}}, c);
  REQUIRE(small.complete);
  REQUIRE(small.stages.size() == 1);
  CHECK(small.stages[0].name == "a");
  // Budgets that cannot hold the model: incomplete, and it says so.
  const Plan short_plan = plan_stages({{"a", "h:1", 1, 700, 0, {}}, {"b", "h:2", 1, 700, 0, {}}}, c);
  CHECK_FALSE(short_plan.complete);
  CHECK(short_plan.problem == "the members' memory budgets hold 8 of the 10 layers");
}

TEST_CASE("a member's measured resting memory and a stage's scratch come off its budget", "[discovery][plan]") {
  ModelCost c = cost(10, 100);
  c.overhead = 50;       // for members that measured nothing
  c.scratch_bytes = 40;  // a stage's working buffers
  // Budget 1000: 9 layers after the fixed overhead (950 / 100), 4 after a measured 500 and the
  // scratch (460 / 100), none when the measure takes it all, and a measure past the budget
  // subtracts nothing below zero.
  auto layers_of = [&](uint64_t base_rss) {
    const Plan p = plan_stages({{"a", "h:1", 1, 1000, base_rss, {}}, {"big", "h:2", 1, 0, 0, {}}}, c);
    for (const auto& s : p.stages) {
      if (s.name == "a") return int(s.layers.size());
    }
    return 0;
  };
  CHECK(layers_of(0) == 5);  // its proportional share, within its 9
  c.n_layers = 20;
  CHECK(layers_of(0) == 9);
  CHECK(layers_of(500) == 4);
  CHECK(layers_of(960) == 0);
  CHECK(layers_of(UINT64_MAX) == 0);
}

TEST_CASE("no member holds an end whose embedding or classifier its budget cannot carry", "[discovery][plan]") {
  // Four members of 1000 bytes; the embedding and the classifier are 2000 each: no member can be
  // the first or the last stage, whatever the middle holds (a stories15M-shaped model on 48 MiB
  // nodes). The plan must say so, not hand the ends to members whose shares were sized without them.
  ModelCost c = cost(6, 100);
  c.embedding_bytes = 2000;
  c.head_bytes = 2000;
  std::vector<PlanMember> members;
  for (const char* name : {"a", "b", "c", "d"}) members.push_back({name, std::string("h:") + name, 1, 1000, 0, {}});
  const Plan plan = plan_stages(members, c);
  CHECK_FALSE(plan.complete);
  for (const auto& s : plan.stages) {
    const uint64_t held = uint64_t(s.layers.size()) * 100 + (s.layers.begin == 0 ? 2000 : 0) +
                          (s.layers.end == 6 ? 2000 : 0);
    INFO(s.name << " " << format_range(s.layers));
    CHECK(held <= 1000);
  }
  CHECK(plan.problem.find("memory budgets hold") != std::string::npos);
  // Room for the ends at two of them: those take the ends, sized for them, and the plan holds.
  members[0].mem_budget = members[3].mem_budget = 2300;
  const Plan fits = plan_stages(members, c);
  REQUIRE(fits.complete);
  for (const auto& s : fits.stages) {
    const uint64_t budget = s.name == "a" || s.name == "d" ? 2300 : 1000;
    CHECK(uint64_t(s.layers.size()) * 100 + (s.layers.begin == 0 ? 2000 : 0) + (s.layers.end == 6 ? 2000 : 0) <=
          budget);
  }
}

TEST_CASE("pinned ranges stay, and the planner fills the rest", "[discovery][plan]") {
  const Plan plan = plan_stages(
      {{"p", "h:9", 1, 0, 0, LayerRange{0, 2}}, {"a", "h:1", 1, 0, 0, {}}, {"b", "h:2", 1, 0, 0, {}}}, cost(6));
  REQUIRE(plan.complete);
  CHECK(ranges(plan) == std::vector<LayerRange>{{0, 2}, {2, 4}, {4, 6}});
  CHECK(plan.stages[0].name == "p");
  const Plan clash = plan_stages({{"p", "h:9", 1, 0, 0, LayerRange{0, 3}}, {"q", "h:8", 1, 0, 0, LayerRange{2, 6}}},
                                 cost(6));
  CHECK_FALSE(clash.complete);
  CHECK(clash.problem == "layers 2:3 (p and q) are held twice");
}

TEST_CASE("routes chain live stages, the plan's first", "[discovery][plan]") {
  const std::vector<StageHolder> loaded = {
      {"a", "h:1", {0, 3}}, {"b", "h:2", {3, 6}}, {"c", "h:3", {0, 2}}, {"d", "h:4", {2, 6}}};
  const auto plain = find_route(loaded, 6, {});
  REQUIRE(plain.size() == 2);
  CHECK(plain[0].name == "a");  // longest first when no plan prefers
  const auto planned = find_route(loaded, 6, {{"c", "h:3", {0, 2}}, {"d", "h:4", {2, 6}}});
  REQUIRE(planned.size() == 2);
  CHECK(planned[0].name == "c");
  CHECK(planned[1].name == "d");
  // A dead end (a:0-3 leads nowhere) is backed out of.
  const auto backtrack = find_route({{"a", "h:1", {0, 3}}, {"c", "h:3", {0, 2}}, {"d", "h:4", {2, 6}}}, 6, {});
  REQUIRE(backtrack.size() == 2);
  CHECK(backtrack[0].name == "c");
  CHECK(find_route({{"a", "h:1", {0, 3}}}, 6, {}).empty());
}

TEST_CASE("members find each other, elect one coordinator and plan the whole model", "[discovery][mesh]") {
  Bus bus;
  bus.add("h:1", {});
  bus.add("h:2", {"h:1"});
  bus.add("h:3", {"h:2"});
  bus.run(5s);
  for (const auto& [address, node] : bus.nodes) {
    INFO(address);
    CHECK(node->membership().members().size() == 2);
    CHECK(node->leadership().coordinator == "h:1");
    CHECK(node->plan().stages.size() == 3);
    CHECK(node->route().size() == 3);
  }
  CHECK(bus.coordinators() == std::vector<std::string>{"h:1"});
}

TEST_CASE("a crashed member is suspected, then declared dead, and the plan moves on", "[discovery][mesh]") {
  Bus bus;
  bus.start(4);
  bus.run(5s);
  REQUIRE(bus.nodes["h:2"]->plan().stages.size() == 4);
  REQUIRE(bus.nodes["h:1"]->route().size() == 4);  // found, and kept until something changes
  bus.down.insert("h:3");
  bus.run(1s);
  CHECK(bus.state_seen("h:1", "h:3") != wire::MemberState::alive);
  // The route follows the suspicion at once: no session starts through a suspect.
  for (const auto& st : bus.nodes["h:1"]->route()) CHECK(st.address != "h:3");
  bus.run(4s);
  for (const char* a : {"h:1", "h:2", "h:4"}) {
    INFO(a);
    CHECK(bus.state_seen(a, "h:3") == wire::MemberState::dead);
    CHECK(bus.nodes[a]->plan().stages.size() == 3);
    CHECK(bus.nodes[a]->route().size() == 3);
  }
}

TEST_CASE("a falsely suspected member refutes the suspicion", "[discovery][mesh]") {
  Bus bus;
  bus.add("h:1", {});
  bus.add("h:2", {"h:1"});
  bus.add("h:3", {"h:1"});
  bus.run(3s);
  // h:1 cannot reach h:3 directly, but h:2 can: indirect probes keep h:3 alive; a rumour that
  // h:3 is suspect is refuted by h:3 itself.
  bus.cut = [](const std::string& from, const std::string& to) {
    return (from == "h:1" && to == "h:3") || (from == "h:3" && to == "h:1");
  };
  wire::Gossip rumour;
  rumour.kind = wire::Gossip::Kind::sync_reply;
  rumour.from = "h:2";
  const Member m3 = bus.nodes["h:2"]->membership().members().at("h:3");  // a copy
  rumour.updates = {{m3.info, wire::MemberState::suspect, m3.incarnation, {}}};
  bus.nodes["h:2"]->receive(rumour, bus.now);
  bus.run(6s);
  CHECK(bus.state_seen("h:1", "h:3") == wire::MemberState::alive);
  CHECK(bus.state_seen("h:2", "h:3") == wire::MemberState::alive);
  CHECK(bus.nodes["h:3"]->membership().incarnation() > m3.incarnation);
}

TEST_CASE("a suspicion shortens for members suspecting independently, not for its echoes", "[discovery][mesh]") {
  Bus bus;
  for (const char* a : {"h:1", "h:2", "h:3", "h:4", "h:5"}) bus.add(a, {"h:1"});
  bus.run(3s);
  const Member m5 = bus.nodes["h:1"]->membership().members().at("h:5");  // a copy
  REQUIRE(m5.state == wire::MemberState::alive);
  // "h:5 is suspect", as h:2 suspected it, forwarded by `via`.
  auto rumour = [&](const std::string& via, const std::string& by) {
    wire::Gossip g;
    g.kind = wire::Gossip::Kind::sync_reply;
    g.from = via;
    g.updates = {{m5.info, wire::MemberState::suspect, m5.incarnation, by}};
    bus.nodes["h:1"]->receive(g, bus.now);
  };
  auto deadline = [&] { return bus.nodes["h:1"]->membership().members().at("h:5").suspect_deadline - bus.now; };
  rumour("h:2", "h:2");
  const auto alone = deadline();
  CHECK(alone == MembershipConfig{}.suspicion_max);
  // Its echoes through h:3 and h:4, many times over: still one suspecter.
  for (int i = 0; i < 5; i++) {
    rumour("h:3", "h:2");
    rumour("h:4", "h:2");
  }
  CHECK(deadline() == alone);
  // h:3 suspects it too: shorter. And with three others, the shortest.
  rumour("h:2", "h:3");
  CHECK(deadline() < alone);
  rumour("h:2", "h:4");
  rumour("h:3", "h:1");
  rumour("h:4", "h:6");
  CHECK(deadline() == MembershipConfig{}.suspicion_min);
}

TEST_CASE("a member's own failed probe confirms a suspicion it heard first", "[discovery][mesh]") {
  // Found by bench/mesh.py: two survivors of a kill -9 suspected the dead stage within a
  // millisecond; the second heard the first's suspicion before its own probe failed, dropped its
  // own, and neither counted the other: 3 s to declare the death instead of 0.6 s, in two rounds
  // of three.
  Bus bus;
  for (const char* a : {"h:1", "h:2", "h:3"}) bus.add(a, {"h:1"});
  bus.run(3s);
  const Member m3 = bus.nodes["h:2"]->membership().members().at("h:3");  // a copy
  REQUIRE(m3.state == wire::MemberState::alive);
  bus.down.insert("h:3");
  wire::Gossip heard;
  heard.kind = wire::Gossip::Kind::sync_reply;
  heard.from = "h:1";
  heard.updates = {{m3.info, wire::MemberState::suspect, m3.incarnation, "h:1"}};
  bus.nodes["h:2"]->receive(heard, bus.now);
  bus.run(1500ms);  // h:2's probes of h:3 fail, and so do h:1's: two suspecters, the shortest time
  CHECK(bus.state_seen("h:2", "h:3") == wire::MemberState::dead);
  CHECK(bus.state_seen("h:1", "h:3") == wire::MemberState::dead);
}

TEST_CASE("a new coordinator is elected, and the old one rejoins as a member", "[discovery][mesh]") {
  Bus bus;
  bus.add("h:1", {});
  bus.add("h:2", {"h:1"});
  bus.add("h:3", {"h:1"});
  bus.run(4s);
  REQUIRE(bus.coordinators() == std::vector<std::string>{"h:1"});
  const uint64_t term = bus.nodes["h:2"]->leadership().term;
  bus.down.insert("h:1");
  bus.run(6s);
  CHECK(bus.coordinators() == std::vector<std::string>{"h:2"});
  CHECK(bus.nodes["h:3"]->leadership().term > term);
  CHECK(bus.nodes["h:3"]->route().size() >= 1);
  // Restarted (state lost, a later instance): it follows the current term.
  bus.add("h:1", {"h:3"}, 2);
  bus.run(5s);
  CHECK(bus.coordinators() == std::vector<std::string>{"h:2"});
  CHECK(bus.nodes["h:1"]->leadership().coordinator == "h:2");
  CHECK(bus.state_seen("h:2", "h:1") == wire::MemberState::alive);
  CHECK(bus.nodes["h:2"]->plan().stages.size() == 3);
}

TEST_CASE("after a partition heals the mesh converges on one coordinator", "[discovery][mesh]") {
  Bus bus;
  bus.start(5);
  bus.run(5s);
  auto side = [](const std::string& a) { return a == "h:1" || a == "h:2" ? 0 : 1; };
  bus.cut = [&](const std::string& from, const std::string& to) { return side(from) != side(to); };
  bus.run(8s);
  CHECK(bus.coordinators().size() == 2);  // one per side: each side serves what it can
  bus.cut = [](auto&, auto&) { return false; };
  bus.run(10s);
  const auto coordinators = bus.coordinators();
  REQUIRE(coordinators.size() == 1);
  for (const auto& [address, node] : bus.nodes) {
    INFO(address);
    CHECK(node->leadership().coordinator == coordinators[0]);
    CHECK(node->plan().version == bus.nodes[coordinators[0]]->plan().version);
    CHECK(node->membership().members().size() == 4);
  }
}

TEST_CASE("gossip cannot grow the member table past its limit, nor add impossible addresses", "[discovery]") {
  wire::MemberInfo self;
  self.name = "me";
  self.address = "h:1";
  self.model = "m";
  self.model_layers = 6;
  MembershipConfig config;
  config.max_members = 3;
  Membership membership(self, config, 1);
  wire::Gossip flood;
  flood.kind = wire::Gossip::Kind::sync_reply;
  flood.from = "h:2";
  for (int i = 0; i < 10; i++) {
    wire::MemberInfo fake = self;
    fake.name = "fake" + std::to_string(i);
    fake.address = "10.0.0." + std::to_string(i) + ":7000";
    flood.updates.push_back({fake, wire::MemberState::alive, 1, {}});
  }
  wire::MemberInfo bad = self;
  bad.address = "no port";
  flood.updates.insert(flood.updates.begin(), {bad, wire::MemberState::alive, 1, {}});
  membership.receive(flood, TimePoint{});
  CHECK(membership.members().size() == 3);
  CHECK_FALSE(membership.members().count("no port"));
  const auto warnings = membership.take_warnings();
  REQUIRE(warnings.size() == 2);  // once for the address, once for the full table
  CHECK(warnings[0].find("not a HOST:PORT") != std::string::npos);
  CHECK(warnings[1].find("member table full") != std::string::npos);
}

// A sync names at most 256 members. Here the only members with room for layers come past the
// 256th in address order, and a node joins once the mesh has settled, through a member other than
// the coordinator, with an address before every other (first in turn to claim a term): it must
// follow the coordinator, hear of every stage holder (no news about them is spreading by then),
// take the plan and find a route.
TEST_CASE("a node joining a mesh larger than a sync follows its coordinator, hears of every stage holder and serves",
          "[discovery][mesh]") {
  Bus bus;
  const int n = 270;
  for (int i = 0; i < n; i++) {
    const bool holder = i >= n - 6;
    bus.add("h:" + std::to_string(1000 + i), i == 0 ? std::vector<std::string>{} : std::vector<std::string>{"h:1000"}, 1,
            holder ? 0 : 1);
  }
  bus.run(40s);
  const Mesh& first = *bus.nodes.at("h:1000");
  REQUIRE(first.route().size() == 6);
  const Leadership before = first.leadership();
  Mesh& late = bus.add("h:0999", {"h:1200"}, 1, 1);
  bus.run(30s);
  // It follows the coordinator it was told of, which it meets only after its first tables: had it
  // claimed a term meanwhile, it would coordinate a mesh it mostly does not know.
  CHECK(late.leadership() == before);
  CHECK(first.leadership() == before);
  CHECK(late.membership().holders().size() == 6);
  CHECK(late.plan().version == first.plan().version);
  CHECK(late.route().size() == 6);
}

// A node whose join went unanswered knows nobody when its settle time is over: claiming then
// would make a second coordinator of term 1 (and, its address being later, the one all follow).
TEST_CASE("a node does not claim a term before the mesh it joins has answered", "[discovery][mesh]") {
  Bus bus;
  const TimePoint start = bus.now;
  bus.cut = [&](const std::string& from, const std::string& to) { return from == "h:2" && to == "h:1" && bus.now < start + 1s; };
  bus.start(3);
  bus.run(6s);
  for (const auto& [address, node] : bus.nodes) {
    INFO(address);
    CHECK(node->leadership() == Leadership{1, "h:1"});
  }
}

// The coordinator re-plans when its members have been quiet for plan_quiet, and also when they
// have kept changing for plan_wait: a mesh forming never rests.
TEST_CASE("a coordinator whose members never rest still re-plans", "[discovery][mesh]") {
  Bus bus;
  bus.start(3);
  bus.run(5s);
  REQUIRE(bus.coordinators() == std::vector<std::string>{"h:1"});
  REQUIRE(bus.nodes.at("h:1")->plan().stages.size() == 3);
  for (int i = 4; i <= 24; i++) {  // a member joins every 150 ms, for three seconds
    bus.add("h:" + std::to_string(i), {"h:1"});
    bus.run(150ms);
  }
  CHECK(bus.nodes.at("h:1")->plan().stages.size() == 6);
}

TEST_CASE("a member that leaves is dead to the others at once, and claims nothing after", "[discovery][mesh]") {
  Bus bus;
  bus.add("h:1", {});
  bus.add("h:2", {"h:1"});
  bus.run(3s);
  REQUIRE(bus.coordinators() == std::vector<std::string>{"h:1"});
  const uint64_t term = bus.nodes["h:1"]->leadership().term;
  bus.nodes["h:1"]->leave(bus.now);
  bus.run(100ms);
  CHECK(bus.state_seen("h:2", "h:1") == wire::MemberState::left);
  bus.run(3s);
  CHECK(bus.nodes["h:1"]->leadership().term == term);  // the leaver does not elect itself again
  CHECK(bus.nodes["h:2"]->is_coordinator());
  CHECK(bus.nodes["h:2"]->plan().stages.size() == 1);
}

TEST_CASE("the broadcast queue hands out updates as a stable sort by transmissions would", "[discovery]") {
  // The reference: what Membership did before the queue, a vector stable-sorted on every send.
  struct Queued {
    wire::MemberUpdate update;
    int transmits = 0;
  };
  std::vector<Queued> reference;
  BroadcastQueue queue;
  uint64_t rng = 12345;
  auto next = [&] {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  };
  for (int step = 0; step < 20000; step++) {
    if (next() % 3 == 0) {
      wire::MemberUpdate u;
      u.info.address = std::string("m") + std::to_string(next() % 60) + ":1";
      u.incarnation = uint64_t(step);
      std::erase_if(reference, [&](const Queued& q) { return q.update.info.address == u.info.address; });
      reference.push_back({u, 0});
      queue.push(u);
    } else {
      const std::size_t max = next() % 30;
      const int limit = 3 + int(next() % 10);
      std::stable_sort(reference.begin(), reference.end(),
                       [](const Queued& a, const Queued& b) { return a.transmits < b.transmits; });
      std::vector<wire::MemberUpdate> want, got;
      for (auto& q : reference) {
        if (want.size() >= max) break;
        want.push_back(q.update);
        q.transmits++;
      }
      std::erase_if(reference, [&](const Queued& q) { return q.transmits >= limit; });
      queue.take(max, limit, &got);
      REQUIRE(got == want);
      REQUIRE(queue.size() == reference.size());
    }
  }
}

TEST_CASE("the member index finds, inserts and erases as a map does", "[discovery]") {
  struct Item {
    std::string address;
    const std::string& key() const { return address; }
  };
  std::map<std::string, Item> items;  // owns them, as Membership's table does
  MemberIndex<Item> index;
  uint64_t rng = 99;
  for (int step = 0; step < 20000; step++) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    const std::string key = std::string("n") + std::to_string((rng >> 33) % 500) + ":7000";
    const Item* found = index.find(key);
    auto it = items.find(key);
    REQUIRE((found != nullptr) == (it != items.end()));
    if (found) REQUIRE(found == &it->second);
    if (it == items.end()) {
      Item& added = items.emplace(key, Item{key}).first->second;
      index.insert(&added);
    } else if ((rng >> 20) % 2) {
      index.erase(key);
      items.erase(it);
    }
    REQUIRE(index.size() == items.size());
  }
  for (const auto& [key, item] : items) REQUIRE(index.find(key) == &item);
}

TEST_CASE("the static plan serves only when every layer is held exactly once", "[wire][plan]") {
  using discovery::Plan;
  auto make_static_plan = discovery::cover_check;
  const Plan ok = make_static_plan({{"b", "x:2", {2, 5}}, {"a", "x:1", {0, 2}}}, 5);
  CHECK(ok.complete);
  REQUIRE(ok.stages.size() == 2);
  CHECK(ok.stages[0].name == "a");
  const Plan gap = make_static_plan({{"a", "x:1", {0, 2}}, {"b", "x:2", {3, 5}}}, 5);
  CHECK_FALSE(gap.complete);
  CHECK(gap.problem == "layers 2:3 are held by no live node");
  const Plan tail = make_static_plan({{"a", "x:1", {0, 2}}}, 5);
  CHECK(tail.problem == "layers 2:5 are held by no live node");
  const Plan twice = make_static_plan({{"a", "x:1", {0, 3}}, {"b", "x:2", {2, 5}}}, 5);
  CHECK_FALSE(twice.complete);
  CHECK(twice.problem == "layers 2:3 (a and b) are held twice");
  CHECK(make_static_plan({}, 5).problem == "layers 0:5 are held by no live node");
}

TEST_CASE("a member that left while cut off from one node, which declared it dead, is left there too once the cut heals",
          "[discovery][mesh]") {
  // `troupe sim --random --nodes 8 --seed 38`, shrunk: h:3 is cut off from h:1 and h:2, declares
  // them dead; h:2 leaves; after the heal h:1 tells h:3 of the goodbye, which outranks the death.
  Bus bus;
  bus.start(3);
  bus.run(5s);
  auto apart = [](const std::string& a, const std::string& b) { return (a == "h:3") != (b == "h:3"); };
  bus.cut = apart;
  bus.run(10s);
  REQUIRE(bus.state_seen("h:3", "h:2") == wire::MemberState::dead);
  bus.nodes["h:2"]->leave(bus.now);
  bus.run(1s);
  REQUIRE(bus.state_seen("h:1", "h:2") == wire::MemberState::left);
  bus.down.insert("h:2");  // the leaver's process is gone
  bus.cut = [](auto&, auto&) { return false; };
  bus.run(20s);
  CHECK(bus.state_seen("h:3", "h:2") == wire::MemberState::left);
  CHECK(bus.state_seen("h:1", "h:2") == wire::MemberState::left);
  // And no death outranks the goodbye again.
  wire::Gossip g;
  g.kind = wire::Gossip::Kind::sync_reply;
  g.from = "h:1";
  g.updates.push_back({bus.nodes["h:2"]->membership().self(), wire::MemberState::dead, bus.nodes["h:2"]->membership().incarnation() + 1, {}});
  bus.inject("h:3", g);
  bus.run(1s);
  CHECK(bus.state_seen("h:3", "h:2") == wire::MemberState::left);
}

TEST_CASE("probes stretch to a slow network's round trip: no live member dies", "[discovery][mesh]") {
  // `troupe sim --random --nodes 100 --seed 3`, shrunk: a 244 ms latency spell on every link (a
  // ~490 ms round trip, past the 120 ms timeout and the 250 ms period): every member suspected
  // every other, many were declared dead, and sessions found no route for a minute.
  Bus bus;
  bus.start(4);
  bus.run(5s);
  bus.changes.clear();
  bus.extra_steps = 10;  // 275 ms each way
  bus.run(30s);
  int deaths = 0;
  for (const auto& [address, changes] : bus.changes) {
    for (const auto& c : changes) deaths += c.after == wire::MemberState::dead;
  }
  CHECK(deaths == 0);
  for (const auto& [by, node] : bus.nodes) {
    for (const auto& [of, m] : node->membership().members()) {
      INFO(by << " sees " << of);
      CHECK(m.state == wire::MemberState::alive);
    }
  }
  // Back to a fast network: the probes follow, and a crash is found as quickly as before.
  bus.extra_steps = 0;
  bus.run(10s);
  bus.down.insert("h:4");
  bus.run(5s);
  CHECK(bus.state_seen("h:1", "h:4") == wire::MemberState::dead);
}
