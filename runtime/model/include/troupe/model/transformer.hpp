// The forward pass of a Llama-family model over a contiguous range of its layers.
//
// One Transformer is what a pipeline stage runs: embed() if it holds layer 0, forward_layers()
// over its own range, logits() if it holds the last layer. Run on the whole range it is the
// single-process engine of `troupe run`, and forward() gives the same floats as run.c.
//
// A batch of positions (the prompt) goes through each layer as a matrix: every weight tile is
// read from memory once and used for all the batch's tokens while it sits in cache. Each token's
// floats are exactly those of running the tokens one at a time (the kernels compute a row from
// that row and its input alone), so batching never changes the text.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <span>
#include <vector>

#include "troupe/kernels/kernels.hpp"
#include "troupe/model/aligned_vector.hpp"
#include "troupe/model/model.hpp"
#include "troupe/model/thread_pool.hpp"

namespace troupe {

// Keys and values of every position seen so far, for the layers of one range. Sized by the
// context actually asked for, not the model's seq_len. Values are rows of kv_dim floats, one a
// position; keys are kept per key head in kernels::key_scores' blocks of 16 positions.
class KvCache {
 public:
  KvCache(const ModelConfig& config, LayerRange layers, int context);
  // Stores one position's key (kv_dim floats, the heads one after another).
  void store_key(int layer, int pos, const float* key);
  // The key blocks of key head `head`, from position 0.
  const float* keys(int layer, int head) const { return keys_.data() + head_offset(layer, head); }
  float* value(int layer, int pos) {
    return values_.data() + (std::size_t(layer - layers_.begin) * context_ + pos) * kv_dim_;
  }
  // Floats from one position's value to the next's.
  std::ptrdiff_t stride() const { return kv_dim_; }
  int context() const { return context_; }
  LayerRange layers() const { return layers_; }
  std::size_t bytes() const { return (keys_.size() + values_.size()) * sizeof(float); }
  // Takes `from`'s keys and values of the layers both hold (a stage whose range moved keeps what
  // it computed). Both must be of one context.
  void copy_layers(const KvCache& from);

 private:
  std::size_t head_offset(int layer, int head) const {
    return (std::size_t(layer - layers_.begin) * kv_heads_ + head) * head_floats_;
  }
  LayerRange layers_;
  int context_;
  int kv_dim_, kv_heads_, head_size_;
  std::size_t head_floats_;  // one key head's blocks: context rounded up to whole blocks
  AlignedVector<float> keys_, values_;
};

class Transformer {
 public:
  // The most positions pushed through the layers at once; longer prompts go in chunks.
  static constexpr int kMaxBatch = 64;

  // `context` bounds the positions this instance will see (1..seq_len). The model must hold the
  // weights of `layers` (and the embedding / head where forward() or logits() are used).
  Transformer(const Model& model, LayerRange layers, int context, ThreadPool& pool);

  // What an instance allocates beside its weights and KV cache, at most: its working rows, the
  // inputs' quantized forms and each thread's tiles (what a memory budget must leave room for).
  static std::size_t scratch_bytes(const ModelConfig& config, int context, int threads);

  // The whole model for one token at position pos; returns the logits (vocab_size floats).
  float* forward(int token, int pos);
  // The whole model for tokens at positions pos, pos+1, ...; returns the logits of the last.
  float* forward_batch(std::span<const int> tokens, int pos);

  // The pieces a pipeline stage uses. x holds count rows of dim floats, for positions pos.. .
  void embed(int token, float* x) const;
  void forward_layers(float* x, int count, int pos) { forward_layers(x, count, pos, layers_); }
  // Only the layers of `sub` (within layers()): a stage filling the cache of layers it gained.
  void forward_layers(float* x, int count, int pos, LayerRange sub);
  float* logits(float* x);  // final norm (in place) and classifier, for one row

  const ModelConfig& config() const { return model_.config; }
  LayerRange layers() const { return layers_; }
  int context() const { return cache_.context(); }
  const KvCache& cache() const { return cache_; }
  KvCache& cache() { return cache_; }

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
  void attention(int layer, int count, int pos);
  // Calls per_token(t) for t in [0, count): spread over the pool for a batch (each token's work
  // is the same function whichever thread runs it), on the caller for one token.
  void for_tokens(int count, const std::function<void(int)>& per_token);
  // How many chunks a parallel loop of `work` multiply-adds over `items` is cut into (1: not
  // worth waking the pool).
  int chunks_for(std::size_t work, int items) const;

  const Model& model_;
  LayerRange layers_;
  ThreadPool& pool_;
  KvCache cache_;
  // Scratch for up to kMaxBatch positions (the kernels' inputs on cache lines).
  AlignedVector<float> x_, xb_, xb2_, hb_, hb2_, q_, k_, att_, logits_;
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
