#include "troupe/runtime/model.hpp"

#include <cstring>

namespace troupe {

const char* weight_type_name(WeightType type) {
  switch (type) {
    case WeightType::f32: return "f32";
    case WeightType::q8: return "q8 (llama2.c groups)";
  }
  return "?";
}

std::size_t Matrix::bytes() const {
  const std::size_t n = std::size_t(rows) * std::size_t(cols);
  if (type == WeightType::f32) return n * sizeof(float);
  return n + n / group_size * sizeof(float);
}

void Matrix::row(int r, float* out) const {
  const std::size_t off = std::size_t(r) * std::size_t(cols);
  if (type == WeightType::f32) {
    std::memcpy(out, f32 + off, std::size_t(cols) * sizeof(float));
    return;
  }
  // run.c's dequantize: value = q * scale of its group.
  for (int j = 0; j < cols; j++) out[j] = q[off + j] * scales[(off + j) / group_size];
}

std::size_t LayerWeights::bytes() const {
  return wq.bytes() + wk.bytes() + wv.bytes() + wo.bytes() + w1.bytes() + w2.bytes() +
         w3.bytes();
}

std::size_t Model::bytes_per_token() const {
  std::size_t total = classifier.bytes() + std::size_t(config.dim) * sizeof(float);
  for (const auto& layer : layers) total += layer.bytes() + 2 * std::size_t(config.dim) * sizeof(float);
  return total;
}

Model load_model(const std::string& path) {
  MappedFile file(path);
  // Only llama2.c checkpoints for now; GGUF ("GGUF" magic) comes with its own reader.
  return load_llama2c_checkpoint(std::move(file));
}

}  // namespace troupe
