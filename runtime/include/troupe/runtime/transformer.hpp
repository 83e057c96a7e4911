// The forward pass of a Llama-family model over a contiguous range of its layers.
//
// One Transformer is what a pipeline stage runs: embed() if it holds layer 0, forward_layers()
// over its own range, logits() if it holds the last layer. Run on the whole range it is the
// single-process engine of `troupe run`, and forward() gives the same floats as run.c.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "troupe/runtime/model.hpp"
#include "troupe/runtime/thread_pool.hpp"

namespace troupe {

// Half-open range of layer indices [begin, end).
struct LayerRange {
  int begin = 0;
  int end = 0;
  int size() const { return end - begin; }
  bool operator==(const LayerRange&) const = default;
};

// Keys and values of every position seen so far, for the layers of one range. Sized by the
// context actually asked for, not the model's seq_len.
class KvCache {
 public:
  KvCache(const ModelConfig& config, LayerRange layers, int context);
  float* key(int layer, int pos) { return at(keys_, layer, pos); }
  float* value(int layer, int pos) { return at(values_, layer, pos); }
  int context() const { return context_; }
  std::size_t bytes() const { return (keys_.size() + values_.size()) * sizeof(float); }

 private:
  float* at(std::vector<float>& v, int layer, int pos) {
    return v.data() + (std::size_t(layer - layers_.begin) * context_ + pos) * kv_dim_;
  }
  LayerRange layers_;
  int context_;
  int kv_dim_;
  std::vector<float> keys_, values_;
};

class Transformer {
 public:
  // `context` bounds the positions this instance will see (1..seq_len).
  Transformer(const Model& model, LayerRange layers, int context, ThreadPool& pool);

  // The whole model for one token at position pos; returns the logits (vocab_size floats).
  float* forward(int token, int pos);

  // The pieces a pipeline stage uses. x holds dim floats.
  void embed(int token, float* x) const;
  void forward_layers(float* x, int pos);
  float* logits(float* x);  // final norm (in place) and classifier

  const ModelConfig& config() const { return model_.config; }
  LayerRange layers() const { return layers_; }
  int context() const { return cache_.context(); }
  const KvCache& cache() const { return cache_; }

 private:
  struct MatvecJob {
    float* out;
    const Matrix* w;
  };
  // out = W x for each job, all sharing input x, in one parallel pass over their rows.
  void matvec(std::initializer_list<MatvecJob> jobs, const float* x, int n);
  void attention(int layer, int pos);
  // task(0) alone when parts == 1, else task(i) on every thread of the pool.
  void run_parts(int parts, const std::function<void(int)>& task);

  const Model& model_;
  LayerRange layers_;
  ThreadPool& pool_;
  KvCache cache_;
  // Scratch for one position.
  std::vector<float> x_, xb_, xb2_, hb_, hb2_, q_, att_, logits_;
  std::vector<int8_t> xq_;   // input quantized for int8 weights
  std::vector<float> xs_;    // its group scales
};

}  // namespace troupe
