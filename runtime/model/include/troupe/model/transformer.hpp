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
  std::size_t bytes() const { return (keys_.size() + values_.size()) * sizeof(float); }

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

  // The whole model for one token at position pos; returns the logits (vocab_size floats).
  float* forward(int token, int pos);
  // The whole model for tokens at positions pos, pos+1, ...; returns the logits of the last.
  float* forward_batch(std::span<const int> tokens, int pos);

  // The pieces a pipeline stage uses. x holds count rows of dim floats, for positions pos.. .
  void embed(int token, float* x) const;
  void forward_layers(float* x, int count, int pos);
  float* logits(float* x);  // final norm (in place) and classifier, for one row

  const ModelConfig& config() const { return model_.config; }
  LayerRange layers() const { return layers_; }
  int context() const { return cache_.context(); }
  const KvCache& cache() const { return cache_; }

 private:
  struct MatvecJob {
    float* out;
    int out_stride;  // floats between the outputs of consecutive tokens
    const Matrix* w;
  };
  // out[t] = W x[t] for each job and each of `count` inputs (rows of n floats, `x_stride` apart).
  void matmul(std::initializer_list<MatvecJob> jobs, const float* x, int x_stride, int n,
              int count);
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
  std::vector<int8_t> xq_;              // inputs quantized for llama2.c int8 weights
  std::vector<float> xs_;               // their group scales
  std::vector<kernels::BlockQ8_0> xq8_;  // inputs quantized for ggml Q8_0 / Q4_0 weights
  // Their block sums for the interleaved kernels, against Q8_0 and Q4_0 weights.
  std::vector<kernels::XBlockSum> xsum_q8_0_, xsum_q4_0_;
  // Per thread: the tile of Q8_0 / Q4_0 weights a batch is running, interleaved for the kernels
  // that prefer it (kernels::prefers_interleaved_blocks).
  std::vector<std::vector<uint8_t>> tiles_;
  // Per thread: the tile of f16 weights a batch is running, widened to f32.
  std::vector<AlignedVector<float>> wide_tiles_;
};

}  // namespace troupe
