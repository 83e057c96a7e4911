// What one batched pass of a stage costs by its number of rows: R sessions' next tokens through
// every layer and the classifier (StageModel::forward_rows), best of --reps, for R = 1, 2, 4, ...
// up to the pass's budget. Where a pass of R rows costs less than R single rows, a stage serving R
// users gains from batching; the rows a second tell how far (docs/performance.md).
//
//   troupe-pass-rows MODEL.gguf [--threads N] [--reps N] [--pos P]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "troupe/model/error.hpp"
#include "troupe/model/stage_model.hpp"

using namespace troupe;

int main(int argc, char** argv) {
  CLI::App app("troupe-pass-rows: the cost of a stage's batched pass by its rows");
  std::string path;
  int threads = 0, reps = 6, pos = 40;
  app.add_option("model", path, "Model file")->required();
  app.add_option("--threads", threads, "Threads (default: all cores)");
  app.add_option("--reps", reps, "Passes timed per row count; the best is shown (default 6)");
  app.add_option("--pos", pos, "Position of the rows (default 40)");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto model = std::make_shared<const Model>(load_model(path));
    const ModelConfig& c = model->config;
    ThreadPool pool(threads);
    const auto stage = transformer_stage(model, pool);
    double one = 0;
    for (int rows = 1; rows <= StageModel::kMaxRows; rows *= 2) {
      std::vector<std::unique_ptr<StageModel::Session>> sessions;
      for (int i = 0; i < rows; i++) sessions.push_back(stage->open(pos + reps + 1));
      std::vector<float> x(std::size_t(rows) * c.dim), logits(std::size_t(rows) * c.vocab_size);
      double best = 1e30;
      for (int rep = 0; rep < reps; rep++) {
        std::vector<StageModel::Rows> batch;
        for (int i = 0; i < rows; i++) {
          sessions[i]->embed((i + 5) % c.vocab_size, x.data() + std::size_t(i) * c.dim);
          batch.push_back({sessions[i].get(), pos + rep, 1, true});
        }
        const auto t0 = std::chrono::steady_clock::now();
        stage->forward_rows(x.data(), batch, logits.data());
        best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      if (rows == 1) one = best;
      std::printf("rows %2d: %8.1f ms a pass, %7.1f rows/s, %.2fx one row's rate\n", rows, best, rows * 1e3 / best,
                  rows * one / best);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe-pass-rows: %s\n", e.what());
    return 2;
  }
  return 0;
}
