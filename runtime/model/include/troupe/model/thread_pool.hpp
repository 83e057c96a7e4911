// A fixed set of threads for data-parallel loops (the matrix-vector products of a forward pass).
//
// A token's forward pass issues a few hundred short parallel loops, so waking the workers must
// be cheap: they spin briefly on a generation counter before sleeping on a condition variable.
// A loop is cut into more chunks than threads, and every thread (the caller too) claims chunks
// until none is left: a worker that is late, or whose core another process holds, leaves its
// share to the others instead of holding up the loop.
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

  // Calls task(chunk, thread) for every chunk in [0, chunks), each once, and returns when all
  // have returned. `thread` in [0, size()) names the thread running it (one chunk at a time per
  // thread: per-thread scratch may be indexed by it). Tasks split their work by chunk (see
  // split_range); which thread runs which chunk varies from run to run.
  using Task = std::function<void(int chunk, int thread)>;
  static constexpr int kMaxChunks = (1 << 20) - 1;
  void run(int chunks, const Task& task);  // chunks <= kMaxChunks

 private:
  void worker_loop(int index);
  // Claims and runs chunks of run `generation` until none is left.
  void work(uint64_t generation, int thread);

  std::vector<std::thread> workers_;
  const Task* task_ = nullptr;
  // The current run in one word: its generation (bits 40-63), its chunk count (20-39) and the
  // next unclaimed chunk (0-19). The count must travel with the generation: a worker finishing
  // one run that read the next run's count beside the old run's claim counter claimed a chunk
  // that did not exist, ran the new task with it, and counted it done, so that a run could
  // count past its chunks and its caller wait forever (seen when consecutive runs had
  // different chunk counts).
  std::atomic<uint64_t> state_{0};
  std::atomic<int> done_{0};  // chunks of the current run that have returned
  uint64_t generation_ = 0;   // the caller's count of runs
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

// Chunks of a loop that streams its items from memory (a matrix-vector product), for `threads`
// threads: chunk i < threads is thread i's contiguous share of the first 80%, and the last 20%
// goes in 2 x threads pieces of decreasing size, for whichever thread is free first. Each thread
// then reads one long run of memory, which the hardware prefetchers follow, and the threads still
// finish together (within the last, smallest piece) when one runs slower or starts late.
// Measured on the project's 2-core VM against 8 equal chunks: TinyLlama Q4_0 generation from
// ~64% to ~69% of the read bandwidth when the machine gave its highest, Q8_0 from ~69% to ~72%
// (docs/performance.md).
constexpr int kStreamChunksPerThread = 3;
Range split_stream(int n, int threads, int i, int align = 1);  // i < threads * kStreamChunksPerThread

int default_thread_count();

}  // namespace troupe
