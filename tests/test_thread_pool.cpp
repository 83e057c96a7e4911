#include <atomic>
#include <catch2/catch.hpp>
#include <vector>

#include "troupe/runtime/thread_pool.hpp"

using namespace troupe;

TEST_CASE("split_range covers every item once, in order", "[thread_pool]") {
  for (int n : {0, 1, 7, 64, 172, 1000, 32000}) {
    for (int parts : {1, 2, 3, 16}) {
      for (int align : {1, 8}) {
        int next = 0;
        for (int i = 0; i < parts; i++) {
          Range r = split_range(n, parts, i, align);
          CHECK(r.begin == next);
          CHECK(r.end >= r.begin);
          next = r.end;
        }
        CHECK(next == n);
      }
    }
  }
}

TEST_CASE("run calls every part once, many times over", "[thread_pool]") {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    REQUIRE(pool.size() == threads);
    std::atomic<long> sum{0};
    for (int round = 0; round < 2000; round++) {
      pool.run([&](int part) { sum += part + 1; });
    }
    CHECK(sum == 2000L * threads * (threads + 1) / 2);
  }
}
