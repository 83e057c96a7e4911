// The session protocol's rules (discovery/session.hpp), on their own: what an entry sends where,
// when it re-routes and replays, and which starts and rows a stage refuses. The actors and the
// simulator host this same code; test_pipeline, test_mesh and test_sim run it end to end.
#include <catch2/catch.hpp>

#include "troupe/discovery/session.hpp"

using namespace troupe;
using discovery::EntrySession;

namespace {

std::vector<wire::RouteStage> route_of(std::initializer_list<std::pair<const char*, LayerRange>> stages) {
  std::vector<wire::RouteStage> r;
  for (const auto& [address, layers] : stages) r.push_back({address, layers});
  return r;
}

template <class T>
std::vector<T> only(const EntrySession::Actions& actions) {
  std::vector<T> out;
  for (const auto& a : actions) {
    if (auto* x = std::get_if<T>(&a)) out.push_back(*x);
  }
  return out;
}

const auto kTwoStages = route_of({{"a:1", {0, 4}}, {"b:1", {4, 8}}});
const auto kOtherTwo = route_of({{"c:1", {0, 4}}, {"b:1", {4, 8}}});

}  // namespace

TEST_CASE("an entry starts on its route and feeds each sampled token to the first stage", "[session]") {
  EntrySession s({1, 5, 9}, 42);
  auto out = s.begin(kTwoStages);
  REQUIRE(out.size() == 1);
  const auto start = std::get<EntrySession::Start>(out[0]);
  CHECK(start.to == "a:1");
  CHECK(start.attempt == 0);
  CHECK(start.tokens == std::vector<int>{1, 5, 9});
  CHECK(start.rng_state == 42);
  CHECK(s.expects(0));

  CHECK(s.sampled(3, 7).empty());
  out = s.next(17);
  const auto step = std::get<EntrySession::Step>(out.at(0));
  CHECK(step.to == "a:1");
  CHECK(step.pos == 3);
  CHECK(step.token == 17);
  CHECK(s.rng_state() == 7);

  out = s.finish();
  const auto ends = only<EntrySession::End>(out);
  REQUIRE(ends.size() == 2);
  CHECK(ends[0].to == "a:1");
  CHECK(ends[1].to == "b:1");
  CHECK(s.over());
  CHECK_FALSE(s.expects(0));
}

TEST_CASE("a token sampled after the wrong position fails the session", "[session]") {
  EntrySession s({1, 2}, 1);
  s.begin(kTwoStages);
  const auto out = s.sampled(5, 0);
  const auto fails = only<EntrySession::Fail>(out);
  REQUIRE(fails.size() == 1);
  CHECK(fails[0].message.find("position 5, not 2") != std::string::npos);
  CHECK(only<EntrySession::End>(out).size() == 2);  // the stages forget it
  CHECK(s.over());
}

TEST_CASE("a lost stage re-routes the session, and the new route replays every token with the sampler where it was",
          "[session]") {
  EntrySession s({1, 2}, 1);
  s.begin(kTwoStages);
  s.sampled(2, 100);
  s.next(30);
  s.sampled(3, 200);
  s.next(31);

  CHECK(s.peer_lost("z:9", "elsewhere").empty());  // not a stage of this route
  auto out = s.peer_lost("a:1", "n1");
  // The route answered: its stages keep the session's state until the new route is known.
  CHECK(only<EntrySession::End>(out).empty());
  const auto ask = only<EntrySession::AskRoute>(out);
  REQUIRE(ask.size() == 1);
  CHECK_FALSE(ask[0].after_move);
  CHECK(ask[0].attempt == 1);
  CHECK(s.rerouting());
  CHECK_FALSE(s.expects(0));  // frames of the old route are ignored
  CHECK_FALSE(s.expects(1));  // and none of the new is due until it starts
  CHECK(s.peer_lost("b:1", "n2").empty());  // one re-route at a time

  out = s.route_found(kOtherTwo, {});
  // b:1 was lost too, meanwhile: no stage is kept, and both of the route left forget the session
  // (the lost one too: one only suspected comes back, and must not keep it for good).
  const auto ends = only<EntrySession::End>(out);
  REQUIRE(ends.size() == 2);
  CHECK(ends[0].to == "a:1");
  CHECK(ends[1].to == "b:1");
  CHECK(ends[0].attempt == 0);
  const auto start = only<EntrySession::Start>(out).at(0);
  CHECK(start.to == "c:1");
  CHECK(start.attempt == 1);
  CHECK(start.tokens == std::vector<int>{1, 2, 30, 31});
  CHECK(start.rng_state == 200);
  CHECK(start.resume_attempt == -1);
  CHECK(start.kept.empty());
  CHECK(s.expects(1));
  CHECK(s.reroute_timeout(1).empty());  // the route came in time
}

TEST_CASE("a re-routed session keeps the stages of its route left that the new one has, and replays only the rest",
          "[session]") {
  const auto three = route_of({{"a:1", {0, 2}}, {"b:1", {2, 5}}, {"c:1", {5, 8}}});
  EntrySession s({1, 2, 3}, 1);
  s.begin(three);
  s.sampled(3, 100);
  s.next(40);
  s.sampled(4, 200);
  s.next(41);
  CHECK(only<EntrySession::End>(s.peer_lost("b:1", "n2")).empty());
  // b:1 restarted at its address (a new process): the same route, but b:1 is not kept.
  const auto again = route_of({{"a:1", {0, 2}}, {"b:1", {2, 5}}, {"c:1", {5, 8}}});
  auto out = s.route_found(again, {});
  const auto ends = only<EntrySession::End>(out);
  REQUIRE(ends.size() == 1);  // only the lost stage forgets the route left's session
  CHECK(ends[0].to == "b:1");
  CHECK(ends[0].attempt == 0);
  const auto start = only<EntrySession::Start>(out).at(0);
  CHECK(start.to == "a:1");
  CHECK(start.attempt == 1);
  CHECK(start.tokens == std::vector<int>{1, 2, 3, 40, 41});
  CHECK(start.rng_state == 200);
  CHECK(start.resume_attempt == 0);
  CHECK(start.resume_pos == 4);  // every position but the last one fed, whose sample is due
  CHECK(start.kept == std::vector<int>{0, 2});
  // Ends come before the start, so that a stage holds one of them at a time.
  CHECK(std::holds_alternative<EntrySession::End>(out.front()));

  // Before a token came back, c:1 hears of b:1's restart only now and tells the entry: the kept
  // stages hold the state still (b:1 may be filling), so they are kept again, and b:1 starts over.
  out = s.error(wire::kPeerGone, "stage 5:8 on c: b:1, which the session needs, is gone", "c:1");
  CHECK(only<EntrySession::End>(out).empty());
  out = s.route_found(again, {});
  const auto b_again = only<EntrySession::End>(out);
  REQUIRE(b_again.size() == 1);
  CHECK(b_again[0].to == "b:1");
  CHECK(b_again[0].attempt == 1);
  const auto restart = only<EntrySession::Start>(out).at(0);
  CHECK(restart.resume_attempt == 1);
  CHECK(restart.resume_pos == 4);
  CHECK(restart.kept == std::vector<int>{0, 2});

  // A stage that said it moved is not kept, one whose layers moved but overlap is; kept ones keep
  // their index.
  CHECK(s.sampled(5, 300).empty());
  s.next(42);
  s.error(wire::kMoved, "stage 0:2 on a moved", "a:1");
  out = s.route_found(route_of({{"a:1", {0, 2}}, {"d:1", {2, 6}}, {"c:1", {6, 8}}}), {});
  CHECK(only<EntrySession::End>(out).size() == 2);
  const auto shrunk = only<EntrySession::Start>(out).at(0);
  CHECK(shrunk.kept == std::vector<int>{2});
  CHECK(shrunk.fill.empty());  // c:1 lost layer 5 only: it holds the rest

  // A stage on layers that share none with those it held is not kept.
  CHECK(s.sampled(6, 400).empty());
  s.next(43);
  s.error(wire::kRelayered, "stage 6:8 on c now holds other layers", "c:1");
  out = s.route_found(route_of({{"c:1", {0, 4}}, {"d:1", {4, 8}}}), {});
  const auto moved = only<EntrySession::Start>(out).at(0);
  CHECK(moved.kept == std::vector<int>{1});  // d:1, from 2:6 to 4:8
  CHECK(moved.fill.empty());                  // 6:8 run on its log of layer 6's rows
  CHECK(only<EntrySession::End>(out).size() == 2);  // a:1's, and c:1's of layers 6:8
}

TEST_CASE("a route that never answered leaves nothing to keep, and a failed session ends the route it left too",
          "[session]") {
  EntrySession s({1, 2}, 1);
  s.begin(kTwoStages);
  auto out = s.peer_lost("b:1", "n2");  // before any token: the stages may not hold it yet
  CHECK(only<EntrySession::End>(out).size() == 2);
  out = s.route_found(kTwoStages, {});
  CHECK(only<EntrySession::Start>(out).at(0).resume_attempt == -1);

  s.sampled(2, 5);
  s.next(9);
  CHECK(only<EntrySession::End>(s.peer_lost("b:1", "n2")).empty());
  out = s.reroute_timeout(2);  // no route came
  REQUIRE(only<EntrySession::Fail>(out).size() == 1);
  const auto ends = only<EntrySession::End>(out);
  REQUIRE(ends.size() == 2);  // the route left's stages forget it
  CHECK(ends[0].attempt == 1);
}

TEST_CASE("a stage that moved sends the session to a new route after a short wait", "[session]") {
  EntrySession s({4}, 1);
  s.begin(kTwoStages);
  const auto out = s.error(wire::kMoved, "stage 0:4 on n1 moved", "a:1");
  const auto ask = only<EntrySession::AskRoute>(out);
  REQUIRE(ask.size() == 1);
  CHECK(ask[0].after_move);
  CHECK(only<EntrySession::End>(out).size() == 2);  // no token came back: nothing to keep
  CHECK(s.reroute_reason() == "stage 0:4 on n1 moved");

  // Any other error ends it.
  EntrySession t({4}, 1);
  t.begin(kTwoStages);
  CHECK(only<EntrySession::Fail>(t.error(1, "broken", "b:1")).at(0).message == "broken");
}

TEST_CASE("a session without a route waits for one, and fails when none comes or none can", "[session]") {
  EntrySession s({4}, 1);
  auto out = s.begin({});
  REQUIRE(only<EntrySession::AskRoute>(out).size() == 1);
  CHECK(s.reroute_timeout(7).empty());  // another attempt's timer
  const auto fails = only<EntrySession::Fail>(s.reroute_timeout(0));
  REQUIRE(fails.size() == 1);
  CHECK(fails[0].message.find("no route through the mesh for 60 s") != std::string::npos);
  CHECK(only<EntrySession::End>(s.reroute_timeout(0)).empty());

  EntrySession t({4}, 1);
  t.begin({});
  const auto none = only<EntrySession::Fail>(t.route_found({}, "layers 4:8 have no holder"));
  REQUIRE(none.size() == 1);
  CHECK(none[0].message ==
        "no live route when the session began, and no live member can take over: layers 4:8 have no holder");
}

TEST_CASE("a session whose client left, or that heard nothing for too long, ends on its stages", "[session]") {
  EntrySession s({4}, 1);
  s.begin(kTwoStages);
  const auto ends = only<EntrySession::End>(s.abandon("the client went away"));
  REQUIRE(ends.size() == 2);
  CHECK(ends[0].reason == "the client went away");
  CHECK(s.stalled().empty());  // over already

  EntrySession t({4}, 1);
  t.begin(kTwoStages);
  CHECK(only<EntrySession::Fail>(t.stalled()).at(0).message.find("no answer from the stages") != std::string::npos);
}

TEST_CASE("a quiet session probes every stage once its route answered, and a stage without it re-routes it", "[session]") {
  EntrySession s({1, 5, 9}, 42);
  s.begin(kTwoStages);
  // No token yet: a stage may not have its start (it travels through the stages before), so a
  // stage without the session would not show that it lost it.
  CHECK(s.quiet().empty());
  CHECK(s.sampled(3, 7).empty());
  s.next(17);
  const auto probes = only<EntrySession::Probe>(s.quiet());
  REQUIRE(probes.size() == 2);
  CHECK(probes[0].to == "a:1");
  CHECK(probes[1].to == "b:1");
  for (const auto& p : probes) {
    CHECK(p.attempt == 0);
    CHECK(p.pos == 4);  // the token sampled after position 4 is due
  }
  // A stage that holds the session says nothing; one that lost it answers kMoved.
  const auto out = s.error(wire::kMoved, "stage 4:8 on b: does not hold the session", "b:1");
  CHECK(only<EntrySession::End>(out).empty());  // a:1 keeps it for the next route
  REQUIRE(only<EntrySession::AskRoute>(out).size() == 1);
  CHECK(only<EntrySession::AskRoute>(out)[0].after_move);
  CHECK(s.rerouting());
  CHECK(only<EntrySession::Probe>(s.quiet()).empty());  // nothing to probe while re-routing
  // The new route is probed only once it answered in turn. b:1 is not kept: it lost the session.
  CHECK(only<EntrySession::Start>(s.route_found(kTwoStages, "")).at(0).kept == std::vector<int>{0});
  CHECK(s.quiet().empty());
  CHECK(s.sampled(4, 8).empty());
  CHECK(only<EntrySession::Probe>(s.quiet()).at(0).attempt == 1);
}

TEST_CASE("a session quiet for the stall timeout fails, and each token starts the count again", "[session]") {
  const int periods = int(discovery::kSessionStallTimeout / discovery::kProbeAfter);
  EntrySession s({1, 5, 9}, 42);
  s.begin(kTwoStages);
  for (int i = 1; i < periods; i++) REQUIRE(only<EntrySession::Fail>(s.quiet()).empty());
  CHECK(s.sampled(3, 7).empty());  // a token: the count starts again
  s.next(17);
  for (int i = 1; i < periods; i++) REQUIRE(only<EntrySession::Probe>(s.quiet()).size() == 2);
  const auto fails = only<EntrySession::Fail>(s.quiet());
  REQUIRE(fails.size() == 1);
  CHECK(fails[0].message.find("no answer from the stages for 120 s") != std::string::npos);
  CHECK(s.over());
  CHECK(s.quiet().empty());
}

TEST_CASE("a stage takes a session only where the route names it with the layers it holds", "[session]") {
  const auto route = route_of({{"a:1", {0, 4}}, {"b:1", {4, 6}}, {"c:1", {6, 8}}});
  auto a = discovery::admit_stage("b:1", LayerRange{4, 6}, 8, 0, "e:1", route, 0, 64);
  REQUIRE(a.taken());
  CHECK(a.index == 1);
  CHECK(a.next == "c:1");
  CHECK(a.peers == std::vector<std::string>{"e:1", "a:1", "c:1"});
  CHECK(discovery::admit_stage("c:1", LayerRange{6, 8}, 8, 0, "e:1", route, 0, 64).next.empty());

  // Holding other layers (it moved), or none: the entry re-routes.
  CHECK(discovery::admit_stage("b:1", LayerRange{4, 8}, 8, 0, "e:1", route, 0, 64).code == wire::kMoved);
  CHECK(discovery::admit_stage("b:1", std::nullopt, 8, 0, "e:1", route, 0, 64).code == wire::kMoved);
  // A route whose first stage does not start at layer 0 does not fit.
  const auto gap = route_of({{"b:1", {4, 6}}, {"c:1", {6, 8}}});
  CHECK(discovery::admit_stage("b:1", LayerRange{4, 6}, 8, 0, "e:1", gap, 0, 64).code == 1);
  // Only the first stage gets the prompt, and it must fit the context.
  CHECK(discovery::admit_stage("a:1", LayerRange{0, 4}, 8, 0, "e:1", route, 0, 64).code == 1);
  CHECK(discovery::admit_stage("a:1", LayerRange{0, 4}, 8, 0, "e:1", route, 65, 64).code == 1);
  CHECK(discovery::admit_stage("a:1", LayerRange{0, 4}, 8, 0, "e:1", route, 64, 64).taken());
  CHECK(discovery::admit_stage("b:1", LayerRange{4, 6}, 8, 0, "e:1", route, 3, 64).code == 1);
  // A full stage says it is busy.
  const auto busy = discovery::admit_stage("b:1", LayerRange{4, 6}, 8, wire::kMaxSessions, "e:1", route, 0, 64);
  CHECK(busy.code == 1);
  CHECK(busy.why.find("busy") != std::string::npos);
}

TEST_CASE("a stage takes rows only at the position due and within the session's cache", "[session]") {
  using discovery::input_problem;
  CHECK(input_problem(true, true, 5, 5, 1, 64, 64).empty());
  CHECK(input_problem(false, false, 5, 5, 3, 64, 64).empty());
  CHECK(input_problem(false, true, 5, 5, 1, 64, 64) == "a token arrived at a stage that does not embed");
  CHECK(input_problem(true, false, 5, 5, 1, 64, 64) == "activations arrived at the first stage");
  CHECK(input_problem(true, true, 5, 4, 1, 64, 64) == "position 4 arrived where 5 was due");
  CHECK(input_problem(false, false, 62, 62, 3, 64, 64) == "positions 62+3 do not fit the session's 64");
  CHECK_FALSE(input_problem(false, false, 0, 0, 0, 64, 64).empty());
  CHECK_FALSE(input_problem(false, false, 0, 0, 65, 128, 64).empty());
}

TEST_CASE("an entry serves on a live route, waits for one the members could cover, refuses otherwise", "[session]") {
  auto lone = [](uint64_t budget) {
    const wire::MemberInfo self{.name = "n1", .address = "127.0.0.1:1", .instance = 1, .model = "m",
                                .model_layers = 4, .mem_budget = budget, .throughput = 10, .cores = 1,
                                .arch = "x86_64", .pinned = {}, .layers = {}};
    discovery::MeshConfig config;
    config.cost.n_layers = 4;
    config.cost.layer_bytes = 100;
    return std::make_unique<discovery::Mesh>(self, config, 1, discovery::TimePoint{});
  };
  auto settle = [](discovery::Mesh& m) {
    for (int t = 0; t < 200; t++) m.tick(discovery::TimePoint{} + discovery::Millis(50 * t));
  };
  auto fits = lone(1'000);
  settle(*fits);
  REQUIRE(fits->assignment() == LayerRange{0, 4});
  CHECK(discovery::admit(*fits, 0) == discovery::Admission::wait);  // planned, not loaded yet
  fits->set_loaded(LayerRange{0, 4});
  CHECK(discovery::admit(*fits, 0) == discovery::Admission::serve);
  CHECK(discovery::admit(*fits, wire::kMaxSessions) == discovery::Admission::busy);

  auto too_small = lone(150);  // one layer and a half
  settle(*too_small);
  CHECK(discovery::admit(*too_small, 0) == discovery::Admission::cannot_cover);
}

TEST_CASE("entries re-route and stages forget a member's sessions once it is gone, dead, left or replaced, not on a suspicion",
          "[session]") {
  using discovery::member_gone;
  using discovery::MemberChange;
  using S = wire::MemberState;
  CHECK_FALSE(member_gone(MemberChange{"s:1", S::alive, S::suspect}));
  CHECK(member_gone(MemberChange{"s:1", S::suspect, S::dead}));
  CHECK(member_gone(MemberChange{"s:1", S::alive, S::left}));
  CHECK_FALSE(member_gone(MemberChange{"s:1", S::suspect, S::alive}));  // refuted
  CHECK_FALSE(member_gone(MemberChange{"s:1", std::nullopt, S::alive}));
  CHECK_FALSE(member_gone(MemberChange{"s:1", S::alive, S::alive, true}));  // new layers
  // A later instance at the address: alive to alive, and the earlier process is gone.
  CHECK(member_gone(MemberChange{"s:1", S::alive, S::alive, true, true}));
}

TEST_CASE("a stage remembers the sessions it was told to end, the latest first", "[session]") {
  discovery::EndedSessions ended(3);
  for (uint64_t id : {1, 2, 3}) ended.add(id);
  CHECK(ended.contains(1));
  ended.add(2);  // again: no change
  ended.add(4);  // forgets the oldest
  CHECK_FALSE(ended.contains(1));
  CHECK(ended.contains(2));
  CHECK(ended.contains(3));
  CHECK(ended.contains(4));
  CHECK_FALSE(ended.contains(5));
}

TEST_CASE("a stage that forgot a session of an entry declared gone tells it once when the session shows life", "[session]") {
  discovery::OrphanedSessions orphans(2);
  CHECK_FALSE(orphans.take(7).has_value());  // never forgotten so
  orphans.add(7, "e:1");
  orphans.add(8, "e:2");
  CHECK(orphans.take(7) == std::optional<std::string>("e:1"));
  CHECK_FALSE(orphans.take(7).has_value());  // told once
  orphans.add(9, "e:3");  // over capacity: the oldest (7) goes
  orphans.add(7, "e:1");  // a later loss of the same session counts again
  CHECK_FALSE(orphans.take(8).has_value());  // pushed out by 7's return
  CHECK(orphans.take(9) == std::optional<std::string>("e:3"));
  CHECK(orphans.take(7) == std::optional<std::string>("e:1"));
  // The entry, alive after all, takes the notice as a moved stage: it re-routes.
  const std::string notice = discovery::orphan_notice("e:1");
  CHECK(notice.find("e:1") != std::string::npos);
  EntrySession s({1}, 1);
  s.begin(kTwoStages);
  CHECK(only<EntrySession::AskRoute>(s.error(wire::kMoved, notice, "b:1")).size() == 1);
}

TEST_CASE("a stage that loses a peer of a session tells its entry, and keeps its state unless the entry is gone",
          "[session]") {
  CHECK_FALSE(discovery::forget_notice("e:1", "e:1").has_value());
  const auto notice = discovery::forget_notice("e:1", "s:2");
  REQUIRE(notice.has_value());
  CHECK(notice->find("s:2") != std::string::npos);
  // The entry re-routes after a short wait, and the stage that told it is kept.
  EntrySession s({1}, 1);
  s.begin(kTwoStages);
  s.sampled(1, 3);
  s.next(7);
  const auto ask = only<EntrySession::AskRoute>(s.error(wire::kPeerGone, *notice, "b:1"));
  REQUIRE(ask.size() == 1);
  CHECK(ask[0].after_move);
  CHECK(only<EntrySession::Start>(s.route_found(kTwoStages, {})).at(0).kept == std::vector<int>{0, 1});
}

TEST_CASE("a stage's memory budget takes the first session always, and further ones while they fit", "[session]") {
  constexpr uint64_t MiB = uint64_t(1) << 20;
  CHECK(discovery::memory_refusal(48 * MiB, 47 * MiB, 4 * MiB, 0).empty());  // the plan made room for one
  CHECK(discovery::memory_refusal(48 * MiB, 40 * MiB, 4 * MiB, 1).empty());
  CHECK(discovery::memory_refusal(48 * MiB, 44 * MiB, 4 * MiB, 1).empty());  // exactly full
  const std::string why = discovery::memory_refusal(48 * MiB, 45 * MiB, 4 * MiB, 3);
  CHECK(why == "busy: its memory budget (48 MiB) holds no more sessions now (3 running)");
  CHECK_FALSE(discovery::memory_refusal(48 * MiB, 49 * MiB, 0, 1).empty());  // already over: nothing more
  // Not measured (the simulator), or no budget: no bound here.
  CHECK(discovery::memory_refusal(48 * MiB, 0, 100 * MiB, 5).empty());
  CHECK(discovery::memory_refusal(0, 40 * MiB, 100 * MiB, 5).empty());
}
