#include "troupe/model/thread_pool.hpp"

#include <algorithm>
#include <stdexcept>

namespace troupe {

int default_thread_count() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = default_thread_count();
  for (int i = 1; i < threads; i++) workers_.emplace_back([this, i] { worker_loop(i); });
}

namespace {

constexpr int kGenerationShift = 40, kChunksShift = 20;
constexpr uint64_t kField = (uint64_t(1) << 20) - 1;        // chunks and next chunk: 20 bits
constexpr uint64_t kGenerations = (uint64_t(1) << 24) - 1;  // generation: 24 bits, wrapping

uint64_t generation_of(uint64_t s) { return s >> kGenerationShift; }

}  // namespace

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    state_.store(((generation_ + 1) & kGenerations) << kGenerationShift, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run(int chunks, const Task& task) {
  if (workers_.empty() || chunks <= 1) {
    for (int c = 0; c < chunks; c++) task(c, 0);
    return;
  }
  if (chunks > kMaxChunks) throw std::invalid_argument("ThreadPool::run: too many chunks");
  task_ = &task;
  done_.store(0, std::memory_order_relaxed);
  const uint64_t generation = ++generation_ & kGenerations;
  {
    // Publishing under the lock pairs with the sleepers' predicate check: no lost wake-up.
    std::lock_guard lock(mutex_);
    state_.store(generation << kGenerationShift | uint64_t(chunks) << kChunksShift,
                 std::memory_order_release);
  }
  wake_.notify_all();
  work(generation, 0);
  // Every chunk is claimed; wait for those still running elsewhere. A thread descheduled in the
  // middle of one needs a core: yield ours after a short spin.
  for (int spin = 0; done_.load(std::memory_order_acquire) != chunks; spin++) {
    if (spin > 2000) std::this_thread::yield();
  }
  task_ = nullptr;
}

void ThreadPool::work(uint64_t generation, int thread) {
  uint64_t s = state_.load(std::memory_order_acquire);
  // A successful claim of chunk k < chunks of this generation means the run is not over (its
  // caller waits for k), so task_ is this run's while the chunk runs.
  while (generation_of(s) == generation && (s & kField) < ((s >> kChunksShift) & kField)) {
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
      (*task_)(int(s & kField), thread);
      done_.fetch_add(1, std::memory_order_acq_rel);
      s = state_.load(std::memory_order_acquire);
    }
  }
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  while (true) {
    uint64_t gen = generation_of(state_.load(std::memory_order_acquire));
    for (int spin = 0; gen == seen && spin < 20000; spin++) {
      gen = generation_of(state_.load(std::memory_order_acquire));
    }
    if (gen == seen) {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return generation_of(state_.load(std::memory_order_acquire)) != seen; });
      gen = generation_of(state_.load(std::memory_order_acquire));
    }
    seen = gen;
    if (stop_.load()) return;
    work(gen, index);
  }
}

Range split_stream(int n, int threads, int i, int align) {
  const int64_t units = (int64_t(n) + align - 1) / align, head = units * 4 / 5, tail = units - head;
  const int64_t pieces = 2 * int64_t(threads), weights = pieces * (pieces + 1) / 2;
  // Where chunk c starts, in units: the heads evenly, then tail pieces of weight pieces - j.
  auto start = [&](int64_t c) {
    if (c <= threads) return head * c / threads;
    const int64_t j = c - threads;
    return head + tail * (j * pieces - j * (j - 1) / 2) / weights;
  };
  auto item = [&](int64_t c) { return int(std::min<int64_t>(n, start(c) * align)); };
  return {item(i), item(i + 1)};
}

Range split_range(int n, int parts, int i, int align) {
  const int units = (n + align - 1) / align;
  const int per = units / parts, extra = units % parts;
  const int first = i * per + std::min(i, extra);
  const int count = per + (i < extra ? 1 : 0);
  return {std::min(n, first * align), std::min(n, (first + count) * align)};
}

}  // namespace troupe
