// Real model shapes by name: `troupe synth --shape` writes models of them, and the simulator
// prices them (bytes per layer, KV cache) without any file. One table, so both mean the same.
#pragma once

#include <map>
#include <string>

namespace troupe {

struct ModelShape {
  int dim, hidden, layers, heads, kv_heads, vocab, seq_len;
  float rope_theta;
  bool tied;  // llama2.c's stories models share the classifier with the embedding
};

inline const std::map<std::string, ModelShape>& model_shapes() {
  static const std::map<std::string, ModelShape> s = {
      {"stories15m", {288, 768, 6, 6, 6, 32000, 256, 10000.0f, true}},
      {"stories110m", {768, 2048, 12, 12, 12, 32000, 1024, 10000.0f, true}},
      {"tinyllama-1.1b", {2048, 5632, 22, 32, 4, 32000, 2048, 10000.0f, false}},
      {"llama2-7b", {4096, 11008, 32, 32, 32, 32000, 4096, 10000.0f, false}},
      {"llama3-8b", {4096, 14336, 32, 32, 8, 128256, 8192, 500000.0f, false}},
  };
  return s;
}

}  // namespace troupe
