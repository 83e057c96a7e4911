// What the stages of a resumed route do when a new plan moved their layers
// (discovery/resume_plan.hpp), from both sides: the entry's fill list and each stage's work.
#include <catch2/catch.hpp>

#include "troupe/discovery/resume_plan.hpp"

using namespace troupe;
using namespace troupe::discovery;

namespace {
std::vector<wire::RouteStage> route_of(std::vector<LayerRange> ranges) {
  std::vector<wire::RouteStage> route;
  for (std::size_t i = 0; i < ranges.size(); i++) {
    std::string address = "n";
    address += std::to_string(i);
    address += ":1";
    route.push_back({address, ranges[i]});
  }
  return route;
}
bool empty(LayerRange r) { return r.size() <= 0; }
}  // namespace

TEST_CASE("the layers two ranges share", "[resume]") {
  CHECK(LayerRange{2, 6}.shared({4, 9}) == LayerRange{4, 6});
  CHECK(LayerRange{4, 9}.shared({2, 6}) == LayerRange{4, 6});
  CHECK(LayerRange{0, 3}.shared({3, 6}).size() == 0);
  CHECK(LayerRange{5, 8}.shared({0, 2}).size() == 0);
}

TEST_CASE("a stage whose layers did not move does nothing but send its log to a new next stage", "[resume]") {
  const ResumeWork kept = resume_work({2, 5}, {2, 5}, 5, false, false);
  CHECK(kept.refusal.empty());
  CHECK_FALSE(kept.rerun);
  CHECK(empty(kept.on_input));
  CHECK(empty(kept.on_log));
  CHECK_FALSE(kept.send_log);
  CHECK(resume_work({2, 5}, {2, 5}, 5, false, true).send_log);
  // Without its log it cannot feed a new next stage, and with no rows coming it cannot run again.
  CHECK_FALSE(resume_work({2, 5}, {2, 5}, -1, false, true).refusal.empty());
  const ResumeWork rerun = resume_work({2, 5}, {2, 5}, -1, true, true);
  CHECK(rerun.refusal.empty());
  CHECK(rerun.rerun);
  CHECK(rerun.on_input.begin == 2);
  CHECK(rerun.on_input.end == 5);
}

TEST_CASE("layers gained at the back run on the log, those at the front on the rows from before", "[resume]") {
  // Held 2:5, holds 2:7 now: layers 5 and 6 run on its log of layer 4's rows; nothing comes.
  const ResumeWork back = resume_work({2, 7}, {2, 5}, 5, false, true);
  CHECK(back.refusal.empty());
  CHECK_FALSE(back.rerun);
  CHECK(back.on_log.begin == 5);
  CHECK(back.on_log.end == 7);
  CHECK(empty(back.on_input));
  CHECK(back.send_log);  // the log now holds layer 6's rows
  // Held 2:5, holds 0:5 now: layers 0 and 1 run on the rows that come, which go nowhere.
  const ResumeWork front = resume_work({0, 5}, {2, 5}, 5, true, true);
  CHECK(front.refusal.empty());
  CHECK_FALSE(front.rerun);
  CHECK(front.on_input.begin == 0);
  CHECK(front.on_input.end == 2);
  CHECK(front.send_log);
  CHECK_FALSE(resume_work({0, 5}, {2, 5}, 5, false, true).refusal.empty());  // no rows come
  // Held 2:5, holds 3:4: its log is of layer 4's rows, not layer 3's; its next needs layer 3's.
  const ResumeWork shrunk = resume_work({3, 4}, {3, 4}, 5, true, true);
  CHECK(shrunk.rerun);
  CHECK(shrunk.on_input.begin == 3);
  CHECK(shrunk.on_input.end == 4);
  // ... unless its next keeps what it holds: then nothing is needed.
  const ResumeWork quiet = resume_work({3, 4}, {3, 4}, 5, false, false);
  CHECK(quiet.refusal.empty());
  CHECK_FALSE(quiet.rerun);
  CHECK(empty(quiet.on_input));
  // None of its layers held: it cannot resume at all.
  CHECK_FALSE(resume_work({5, 8}, {5, 5}, 5, true, true).refusal.empty());
}

TEST_CASE("the entry names the stages that take the kept positions' rows, as the stages work it out", "[resume]") {
  const int layers = 9;
  // 0:3 3:6 6:9 → the first stage gone for good: 0:5 5:9.
  const auto two = route_of({{0, 5}, {5, 9}});
  // n0 held 3:6: it gains 0:3 at the front (rows: the tokens) and loses layer 5 at the back, so its
  // log (layer 5's rows) is not what n1 needs: it runs every layer again. n1 (held 6:9) gains layer
  // 5 at the front from those rows.
  CHECK(fill_stages(two, {LayerRange{3, 6}, LayerRange{6, 9}}, layers) == std::vector<int>{0, 1});
  // The same with the last stage gone: 0:5 5:9 from 0:3 3:6 (and 6:9 gone). n0 runs 3:5 on its
  // log; n1 keeps layer 5 and runs 6:9 on its own log: nothing comes from before.
  CHECK(fill_stages(two, {LayerRange{0, 3}, LayerRange{3, 6}}, layers).empty());
  // A new stage after a kept one takes its log; a kept one after a new one takes its rows when it
  // gained layers at the front.
  const auto three = route_of({{0, 3}, {3, 5}, {5, 9}});
  CHECK(fill_stages(three, {LayerRange{0, 3}, std::nullopt, LayerRange{5, 9}}, layers).empty());
  CHECK(fill_stages(three, {LayerRange{0, 3}, std::nullopt, LayerRange{6, 9}}, layers) == std::vector<int>{2});
  // A kept stage before a new one that lost layers at its back runs again.
  CHECK(fill_stages(three, {LayerRange{0, 4}, std::nullopt, LayerRange{5, 9}}, layers) == std::vector<int>{0});
  // Whatever the entry names, each stage's own view agrees with it.
  const std::vector<std::optional<LayerRange>> held{LayerRange{3, 6}, LayerRange{6, 9}};
  const auto fill = fill_stages(two, held, layers);
  for (std::size_t i = 0; i < two.size(); i++) {
    const bool input = std::find(fill.begin(), fill.end(), int(i)) != fill.end();
    const bool output_needed = i + 1 < two.size() && std::find(fill.begin(), fill.end(), int(i) + 1) != fill.end();
    const LayerRange r = two[i].layers, o = *held[i];
    const LayerRange valid{std::max(r.begin, o.begin), std::min(r.end, o.end)};
    CHECK(resume_work(r, valid, o.end == layers ? -1 : o.end, input, output_needed).refusal.empty());
  }
}

TEST_CASE("fills_at reads a resumed start's fill list", "[resume]") {
  wire::SessionStart start;
  start.route = route_of({{0, 4}, {4, 9}});
  start.fill = {1};
  CHECK_FALSE(fills_at(start, "n1:1"));  // not a resumed start
  start.resume = 7;
  CHECK(fills_at(start, "n1:1"));
  CHECK_FALSE(fills_at(start, "n0:1"));
  start.fill = {5, -1};  // out of the route: names nobody
  CHECK_FALSE(fills_at(start, "n1:1"));
}
