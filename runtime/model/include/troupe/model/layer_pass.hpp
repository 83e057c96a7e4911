// The forward pass of a Llama-family model over a contiguous range of its layers, for the rows of
// one session or of several at once.
//
// A batch of rows goes through each layer as a matrix: every weight tile is read from memory once
// and used for all the batch's rows while it sits in cache. The rows may be one session's prompt
// or the next positions of many sessions, each with its own KV cache and positions (a stage
// batching its users): attention runs per row on its own session's cache. Each row's floats are
// exactly those of running it alone (the kernels compute a row from that row and its input only),
// so batching never changes the text.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <span>
#include <vector>

#include "troupe/kernels/kernels.hpp"
#include "troupe/model/aligned_vector.hpp"
#include "troupe/model/kv_cache.hpp"
#include "troupe/model/model.hpp"
#include "troupe/model/thread_pool.hpp"

namespace troupe {

// One session's rows in a pass: `count` rows for positions pos, pos+1, ... of `cache`, stacked in
// x after the rows of the entries before it.
struct CacheRows {
  KvCache* cache;
  int pos;
  int count;
};

class LayerPass {
 public:
  // The most rows pushed through the layers at once; longer prompts go in chunks.
  static constexpr int kMaxBatch = 64;
  // The most rows whose logits one logits() call computes (more go in several calls: the
  // scratch holds this many rows of the vocabulary's size).
  static constexpr int kMaxLogitRows = 16;

  // The model must hold the weights of `layers` (and the embedding / head where embed() or
  // logits() are used). `pool` must outlive the pass.
  LayerPass(const Model& model, LayerRange layers, ThreadPool& pool);

  // What a pass allocates beside its weights, at most, with caches of up to `context` positions:
  // its working rows, the inputs' quantized forms and each thread's tiles (what a memory budget
  // must leave room for).
  static std::size_t scratch_bytes(const ModelConfig& config, int context, int threads);

  void embed(int token, float* x) const;
  // The rows of every entry (at most kMaxBatch in all) through the layers of `sub` (within
  // layers()), in place; each entry's cache takes its positions' keys and values.
  void forward_layers(float* x, std::span<const CacheRows> rows, LayerRange sub);
  // Final norm (in place) and classifier for `count` rows of x (at most kMaxLogitRows), the
  // classifier read once for all; returns their logits, vocab_size floats a row.
  float* logits(float* x, int count);

  const ModelConfig& config() const { return model_.config; }
  LayerRange layers() const { return layers_; }

 private:
  struct MatvecJob {
    float* out;
    int out_stride;  // floats between the outputs of consecutive tokens
    const Matrix* w;
  };
  // The inputs of one matmul call: `count` rows of n floats, `x_stride` apart.
  struct Batch {
    const float* x;
    int x_stride;
    int n;
    int count;
    bool interleave;  // tiles of types with an interleaved layout are copied into it
  };
  // out[t] = W x[t] for each job and each of `count` inputs (rows of n floats, `x_stride` apart).
  void matmul(std::initializer_list<MatvecJob> jobs, const float* x, int x_stride, int n,
              int count);
  // x in the form each job's type takes it (kernels::TypeTraits::input), and the block sums of
  // the types whose tiles are interleaved.
  void prepare_inputs(std::initializer_list<MatvecJob> jobs, const Batch& b);
  // Token t's input for a matrix of `type` (the batch's x, or its form made by prepare_inputs),
  // and the stride from a token's to the next in the input type's blocks.
  kernels::Operand input(const Matrix& w, const Batch& b, int t) const;
  int input_stride(const Matrix& w, const Batch& b) const;
  // Rows [r0, r1) of one job for every token of the batch.
  void multiply(const MatvecJob& job, const Batch& b, int r0, int r1, int thread);
  void multiply_tile(const MatvecJob& job, const Batch& b, int r0, int r1, int thread);
  // Each row's cache and position (row_cache_, row_pos_), and attention scores for the longest
  // of the caches; returns the number of rows. Throws where a cache lacks `sub` or its positions.
  int place_rows(std::span<const CacheRows> rows, LayerRange sub);
  void store_keys_values(int layer, int count);
  void attention(int layer, int count);
  // Calls per_token(t) for t in [0, count): spread over the pool for a batch (each token's work
  // is the same function whichever thread runs it), on the caller for one token.
  void for_tokens(int count, const std::function<void(int)>& per_token);
  // How many chunks a parallel loop of `work` multiply-adds over `items` is cut into (1: not
  // worth waking the pool).
  int chunks_for(std::size_t work, int items) const;

  const Model& model_;
  LayerRange layers_;
  ThreadPool& pool_;
  // Scratch for up to kMaxBatch rows (the kernels' inputs on cache lines).
  AlignedVector<float> xb_, xb2_, hb_, hb2_, q_, k_, v_, att_, logits_;
  std::array<KvCache*, kMaxBatch> row_cache_{};
  std::array<int, kMaxBatch> row_pos_{};
  int att_context_ = 0;  // the positions each thread's rows of att_ hold
  // Per input form (a weight type other than f32 that some type's products take x in:
  // kernels::TypeTraits::input), the batch's inputs in it, a token's after the other's, and their
  // scales for a form whose scales lie apart (llama2.c's groups, of the jobs' group size).
  std::array<std::vector<uint8_t>, kernels::kWeightTypes> forms_;
  std::array<std::vector<float>, kernels::kWeightTypes> form_scales_;
  // Per weight type with an interleaved layout: the inputs' block sums for its kernels.
  std::array<std::vector<kernels::XBlockSum>, kernels::kWeightTypes> sums_;
  // Per thread: the tile of weights a batch is running, interleaved for the kernels that prefer
  // it (kernels::IsaKernels::interleaves_batches).
  std::vector<std::vector<uint8_t>> tiles_;
  // Per thread: the tile of weights a batch is running widened to f32 (TypeTraits::batch_widened:
  // f16).
  std::vector<AlignedVector<float>> wide_tiles_;
};

}  // namespace troupe
