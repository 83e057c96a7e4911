// A fixed set of threads for data-parallel loops (the matrix-vector products of a forward pass).
//
// A token's forward pass issues a few hundred short parallel loops, so waking the workers must
// be cheap: they spin briefly on a generation counter before sleeping on a condition variable.
// The calling thread takes the first share of every loop itself.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace troupe {

class ThreadPool {
 public:
  // `threads` counts the caller; 0 means one per core.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls task(i) for every i in [0, size()) concurrently, one per thread, and returns when all
  // have returned. Tasks split their own work by i (see split_range).
  void run(const std::function<void(int)>& task);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  const std::function<void(int)>* task_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

// The share [begin, end) of n items for part i of `parts`, in multiples of `align` where possible.
struct Range {
  int begin;
  int end;
};
Range split_range(int n, int parts, int i, int align = 1);

int default_thread_count();

}  // namespace troupe
