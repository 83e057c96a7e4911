// Which rows a stage runs in one pass (discovery/batch_plan.hpp).
#include <catch2/catch.hpp>

#include "troupe/discovery/batch_plan.hpp"

using namespace troupe::discovery;

namespace {
int rows_of(const std::vector<PassTake>& takes) {
  int n = 0;
  for (const PassTake& t : takes) n += t.rows;
  return n;
}
}  // namespace

TEST_CASE("a pass takes every decode row before any prompt row", "[batch]") {
  const std::vector<ReadyRows> ready = {{64, false}, {1, true}, {40, false}, {1, true}, {1, true}};
  const auto takes = plan_pass(ready, 64);
  REQUIRE(takes.size() == 4);
  CHECK(takes[0].index == 1);
  CHECK(takes[1].index == 3);
  CHECK(takes[2].index == 4);
  // The first prompt is cut where the budget ends; the second waits for the next pass.
  CHECK(takes[3].index == 0);
  CHECK(takes[3].rows == 61);
  CHECK(rows_of(takes) == 64);
}

TEST_CASE("a pass never runs more rows than its budget", "[batch]") {
  std::vector<ReadyRows> ready(40, ReadyRows{1, true});
  ready.push_back({10, false});
  const auto all = plan_pass(ready, 64);
  CHECK(all.size() == 41);
  CHECK(rows_of(all) == 50);
  CHECK(all.back().index == 40);
  // A budget smaller than the decode rows: the first ones come first, no prompt row runs.
  const auto some = plan_pass(ready, 20);
  REQUIRE(some.size() == 20);
  CHECK(some.back().index == 19);
  CHECK(rows_of(some) == 20);
}

TEST_CASE("nothing ready, nothing taken", "[batch]") {
  CHECK(plan_pass({}, 64).empty());
  const std::vector<ReadyRows> none = {{0, false}};
  CHECK(plan_pass(none, 64).empty());
}
