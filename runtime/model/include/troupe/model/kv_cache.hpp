// One session's keys and values on a range of layers: what a session keeps between positions.
#pragma once

#include <cstddef>

#include "troupe/model/aligned_vector.hpp"
#include "troupe/model/model.hpp"

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

}  // namespace troupe
