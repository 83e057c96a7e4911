#include <atomic>
#include <cstdlib>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "troupe/model/thread_pool.hpp"

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

TEST_CASE("split_stream gives each thread a long share, then shrinking pieces", "[thread_pool]") {
  for (int n : {0, 1, 7, 64, 172, 1000, 5632, 32000}) {
    for (int threads : {1, 2, 3, 16}) {
      for (int align : {1, 16}) {
        INFO("n " << n << " threads " << threads << " align " << align);
        const int chunks = threads * kStreamChunksPerThread;
        int next = 0;
        std::vector<int> sizes;
        for (int i = 0; i < chunks; i++) {
          const Range r = split_stream(n, threads, i, align);
          CHECK(r.begin == next);
          CHECK(r.end >= r.begin);
          CHECK((r.begin % align == 0 || r.begin == n));
          sizes.push_back(r.end - r.begin);
          next = r.end;
        }
        CHECK(next == n);
        if (n >= 1000) {  // the shares hold ~80%, the pieces after them shrink
          int head = 0;
          for (int i = 0; i < threads; i++) head += sizes[i];
          CHECK(std::abs(head - 0.8 * n) <= 0.01 * n + align * threads);
          for (int i = threads + 1; i < chunks; i++) CHECK(sizes[i] <= sizes[i - 1] + align);
          CHECK(sizes[threads] < sizes[0]);
        }
      }
    }
  }
}

TEST_CASE("run calls every chunk once, one at a time per thread, many times over", "[thread_pool]") {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    REQUIRE(pool.size() == threads);
    for (int chunks : {1, 2, 3, 16, 100}) {
      std::atomic<long> sum{0};
      std::vector<std::atomic<int>> busy(threads);
      std::atomic<int> overlaps{0}, bad_thread{0};
      for (int round = 0; round < 300; round++) {
        pool.run(chunks, [&](int chunk, int thread) {
          if (thread < 0 || thread >= threads) {
            bad_thread++;
            return;
          }
          if (busy[thread].fetch_add(1) != 0) overlaps++;
          sum += chunk + 1;
          busy[thread].fetch_sub(1);
        });
      }
      INFO(threads << " threads, " << chunks << " chunks");
      CHECK(sum == 300L * chunks * (chunks + 1) / 2);
      CHECK(overlaps == 0);
      CHECK(bad_thread == 0);
    }
  }
}

TEST_CASE("a loop finishes when a worker is held up: the others take its chunks", "[thread_pool]") {
  ThreadPool pool(2);
  // The first chunk to start blocks until every other chunk has run: only possible when the
  // thread that is free takes them all.
  std::atomic<int> ran{0};
  std::atomic<bool> first{true};
  pool.run(8, [&](int, int) {
    if (first.exchange(false)) {
      while (ran.load() < 7) std::this_thread::yield();
    } else {
      ran++;
    }
  });
  CHECK(ran == 7);
}

TEST_CASE("runs of different chunk counts back to back run each chunk once", "[thread_pool]") {
  // The trigger of a lost run: a worker still leaving one run while the caller starts the next
  // with more chunks. Each run must execute exactly its chunks, once each, and return.
  troupe::ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(16);
  for (int run = 0; run < 50000; run++) {
    const int chunks = 2 + (run * 7) % 14;
    for (auto& h : hits) h.store(0, std::memory_order_relaxed);
    pool.run(chunks, [&](int chunk, int) { hits[chunk].fetch_add(1, std::memory_order_relaxed); });
    for (int c = 0; c < chunks; c++) {
      if (hits[c].load() != 1) FAIL("run " << run << " chunk " << c << " ran " << hits[c].load() << " times");
    }
    for (int c = chunks; c < 16; c++) {
      if (hits[c].load() != 0) FAIL("run " << run << " ran chunk " << c << " of " << chunks);
    }
  }
}
