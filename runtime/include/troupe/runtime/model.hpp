// A model held in memory: its shape and views of its weights inside the mapped file.
//
// The weights are never copied: a Matrix points into the mapping, so loading is instant, pages
// come in as the layers that use them run, and a pipeline stage that runs layers [a, b) only
// ever touches those layers' pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "troupe/runtime/mapped_file.hpp"

namespace troupe {

struct ModelConfig {
  int dim = 0;         // width of the residual stream
  int hidden_dim = 0;  // width of the feed-forward layer
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;  // fewer than n_heads: grouped-query attention
  int vocab_size = 0;
  int seq_len = 0;     // longest context the model was trained for
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;

  int head_size() const { return dim / n_heads; }
  int kv_dim() const { return dim * n_kv_heads / n_heads; }
};

enum class WeightType {
  f32,  // plain floats
  q8,   // llama2.c version-2 groups: int8 values, one f32 scale per group_size values
};

const char* weight_type_name(WeightType type);

// A row-major rows x cols matrix (or, for the embedding, a table of rows).
struct Matrix {
  WeightType type = WeightType::f32;
  const float* f32 = nullptr;     // type f32
  const int8_t* q = nullptr;      // type q8
  const float* scales = nullptr;  // type q8: rows*cols/group_size scales
  int rows = 0;
  int cols = 0;
  int group_size = 0;  // type q8

  std::size_t bytes() const;
  // Writes row r as floats (the embedding lookup).
  void row(int r, float* out) const;
};

struct LayerWeights {
  const float* rms_att = nullptr;  // dim
  Matrix wq, wk, wv, wo;           // dim->dim, dim->kv_dim, dim->kv_dim, dim->dim
  const float* rms_ffn = nullptr;  // dim
  Matrix w1, w2, w3;               // dim->hidden, hidden->dim, dim->hidden
  std::size_t bytes() const;
};

struct Model {
  std::string path;
  std::string format;  // e.g. "llama2.c v0 (legacy)"
  ModelConfig config;
  Matrix token_embedding;  // vocab x dim
  std::vector<LayerWeights> layers;
  const float* rms_final = nullptr;  // dim
  Matrix classifier;                 // vocab x dim; the embedding itself when shared
  bool shared_classifier = false;
  MappedFile file;

  // Bytes of weights read to produce one token: every layer, the final norm and the classifier.
  std::size_t bytes_per_token() const;
};

// Loads a model file, choosing the reader by its first bytes. Every header field is checked
// against the file size before anything is touched; problems throw InputError naming the file.
Model load_model(const std::string& path);

// llama2.c checkpoints: version 0 (run.c's legacy layout), 1 (fp32) and 2 (int8 groups).
Model load_llama2c_checkpoint(MappedFile file);

}  // namespace troupe
