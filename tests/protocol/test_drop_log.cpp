// DropLog: every dropped frame is counted; a sender gets at most one log line a second, which
// says how many of its frames were dropped since its last line.
#include <catch2/catch.hpp>

#include "troupe/protocol/drop_log.hpp"

using namespace troupe;
using namespace std::chrono_literals;

TEST_CASE("dropped frames are all counted and logged at most once a second per sender", "[wire]") {
  DropLog log;
  const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  int lines = 0;
  for (int i = 0; i < 1000; i++) lines += log.dropped("a:1", "bad", t0 + i * 1ms).has_value();
  CHECK(lines == 1);  // the first, at t0; the next is due at t0 + 1 s
  CHECK(log.total() == 1000);

  const auto other = log.dropped("b:1", "bad", t0 + 10ms);  // another sender has its own second
  REQUIRE(other);
  CHECK(*other == "dropped a frame from b:1: bad");

  const auto next = log.dropped("a:1", "worse", t0 + 1s);
  REQUIRE(next);
  CHECK(*next == "dropped 1000 frames from a:1 in the last 1 s; the last: worse");
  CHECK(log.total() == 1002);
}

TEST_CASE("a flood from ever new senders keeps a bounded table and is still logged sparingly", "[wire]") {
  DropLog log;
  const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  int lines = 0;
  const int senders = int(DropLog::kSendersKept) * 3;
  for (int i = 0; i < senders; i++) lines += log.dropped("client " + std::to_string(i), "bad", t0).has_value();
  CHECK(lines == int(DropLog::kSendersKept) + 1);  // each kept sender once, then the others as one
  CHECK(log.total() == uint64_t(senders));
}
