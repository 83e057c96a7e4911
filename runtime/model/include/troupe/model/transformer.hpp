// One session's forward pass over a contiguous range of a Llama-family model's layers: a
// LayerPass and the session's KvCache.
//
// Run on the whole range it is the single-process engine of `troupe run`, and forward() gives
// the same floats as llama2.c's run.c. A prompt goes through the layers in batches of up to
// kMaxBatch positions (layer_pass.hpp: the floats are those of one position at a time).
#pragma once

#include <span>

#include "troupe/model/aligned_vector.hpp"
#include "troupe/model/kv_cache.hpp"
#include "troupe/model/layer_pass.hpp"
#include "troupe/model/model.hpp"
#include "troupe/model/thread_pool.hpp"

namespace troupe {

class Transformer {
 public:
  static constexpr int kMaxBatch = LayerPass::kMaxBatch;
  static constexpr int kMaxEach = LayerPass::kMaxLogitRows;  // forward_each's tokens, at most

  // `context` bounds the positions this instance will see (1..seq_len). The model must hold the
  // weights of `layers` (and the embedding / head where forward() or logits() are used).
  Transformer(const Model& model, LayerRange layers, int context, ThreadPool& pool);

  // The whole model for one token at position pos; returns the logits (vocab_size floats).
  float* forward(int token, int pos);
  // The whole model for tokens at positions pos, pos+1, ...; returns the logits of the last.
  float* forward_batch(std::span<const int> tokens, int pos);
  // At most kMaxEach tokens at positions pos, pos+1, ... as one batch; returns every one's
  // logits, vocab_size floats each (a speculative step checks a guess with each).
  float* forward_each(std::span<const int> tokens, int pos);

  // The pieces of a pass, for a model split by hand (a stage on a device runs a LayerPass through
  // StageModel). x holds count rows of dim floats, for positions pos.. .
  void embed(int token, float* x) const { pass_.embed(token, x); }
  void forward_layers(float* x, int count, int pos) { forward_layers(x, count, pos, pass_.layers()); }
  // Only the layers of `sub` (within layers()).
  void forward_layers(float* x, int count, int pos, LayerRange sub);
  float* logits(float* x) { return pass_.logits(x, 1); }  // final norm (in place) and classifier

  const ModelConfig& config() const { return pass_.config(); }
  LayerRange layers() const { return pass_.layers(); }
  int context() const { return cache_.context(); }
  const KvCache& cache() const { return cache_; }

 private:
  LayerPass pass_;
  KvCache cache_;
  AlignedVector<float> x_;  // up to kMaxBatch rows
};

}  // namespace troupe
