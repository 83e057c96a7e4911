#include "troupe/model/transformer.hpp"

#include <algorithm>

namespace troupe {

Transformer::Transformer(const Model& model, LayerRange layers, int context, ThreadPool& pool)
    : pass_(model, layers, pool), cache_(model.config, layers, context) {
  x_.resize(std::size_t(kMaxBatch) * model.config.dim);
}

void Transformer::forward_layers(float* x, int count, int pos, LayerRange sub) {
  const CacheRows rows{&cache_, pos, count};
  pass_.forward_layers(x, {&rows, 1}, sub);
}

float* Transformer::forward(int token, int pos) {
  embed(token, x_.data());
  forward_layers(x_.data(), 1, pos);
  return logits(x_.data());
}

float* Transformer::forward_each(std::span<const int> tokens, int pos) {
  const int dim = config().dim, count = static_cast<int>(tokens.size());
  for (int t = 0; t < count; t++) embed(tokens[t], x_.data() + std::size_t(t) * dim);
  forward_layers(x_.data(), count, pos);
  return pass_.logits(x_.data(), count);
}

float* Transformer::forward_batch(std::span<const int> tokens, int pos) {
  const int dim = config().dim;
  int count = 0;
  for (std::size_t at = 0; at < tokens.size(); at += count) {
    count = static_cast<int>(std::min<std::size_t>(kMaxBatch, tokens.size() - at));
    for (int t = 0; t < count; t++) embed(tokens[at + t], x_.data() + std::size_t(t) * dim);
    forward_layers(x_.data(), count, pos + static_cast<int>(at));
  }
  return logits(x_.data() + std::size_t(count - 1) * dim);
}

}  // namespace troupe
