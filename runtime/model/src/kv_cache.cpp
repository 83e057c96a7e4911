#include "troupe/model/kv_cache.hpp"

#include <algorithm>
#include <string>

#include "troupe/kernels/kernels.hpp"
#include "troupe/model/error.hpp"

namespace troupe {

namespace k = troupe::kernels;

KvCache::KvCache(const ModelConfig& config, LayerRange layers, int context)
    : layers_(layers),
      context_(context),
      kv_dim_(config.kv_dim()),
      kv_heads_(config.n_kv_heads),
      head_size_(config.head_size()) {
  // Checked before allocating: the context may come from a peer's frame, and a cache zero-filled
  // for an absurd one would exhaust memory before any later check saw it.
  if (context < 1 || context > config.seq_len) {
    throw InputError("context " + std::to_string(context) + " is outside 1.." +
                     std::to_string(config.seq_len));
  }
  const int blocks = (context + k::kKeyBlock - 1) / k::kKeyBlock;
  head_floats_ = std::size_t(blocks) * k::kKeyBlock * head_size_;
  keys_.assign(std::size_t(layers.size()) * kv_heads_ * head_floats_, 0.0f);
  values_.assign(std::size_t(layers.size()) * context * kv_dim_, 0.0f);
}

void KvCache::store_key(int layer, int pos, const float* key) {
  for (int h = 0; h < kv_heads_; h++) {
    float* blocks = keys_.data() + head_offset(layer, h);
    for (int i = 0; i < head_size_; i++) {
      blocks[k::key_block_offset(pos, i, head_size_)] = key[h * head_size_ + i];
    }
  }
}

void KvCache::copy_layers(const KvCache& from) {
  if (from.context_ != context_ || from.kv_dim_ != kv_dim_ || from.head_floats_ != head_floats_) {
    throw InputError("a KV cache of another shape cannot be copied");
  }
  const std::size_t key_floats = std::size_t(kv_heads_) * head_floats_;
  const std::size_t value_floats = std::size_t(context_) * kv_dim_;
  const LayerRange both = layers_.shared(from.layers_);
  for (int l = both.begin; l < both.end; l++) {
    std::copy_n(from.keys_.data() + from.head_offset(l, 0), key_floats, keys_.data() + head_offset(l, 0));
    std::copy_n(from.values_.data() + std::size_t(l - from.layers_.begin) * value_floats, value_floats,
                values_.data() + std::size_t(l - layers_.begin) * value_floats);
  }
}

}  // namespace troupe
