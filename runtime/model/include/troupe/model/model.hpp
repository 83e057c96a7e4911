// A model in memory: its shape and its weights.
//
// Loading first reads the file's header and tensor table (views into a mapping of the file),
// then places the weights of the layers this process runs: copied into private memory (the
// default: on the machines measured here, reading weights from private memory is 2-10x faster
// than from the page cache through a file mapping) or left mapped (`mmap`: instant start,
// page cache shared between processes). Either way a pipeline stage that runs layers [a, b)
// only ever reads those layers' bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "troupe/model/mapped_file.hpp"
#include "troupe/model/weight_types.hpp"

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
  // What makes these (positive) sizes unusable together, or "" when nothing does: heads must
  // split dim evenly, kv heads must split the heads, and RoPE needs an even head size.
  std::string shape_problem() const;
};

// Half-open range of layer indices [begin, end).
struct LayerRange {
  int begin = 0;
  int end = 0;
  int size() const { return end - begin; }
  bool contains(LayerRange other) const { return begin <= other.begin && other.end <= end; }
  // The layers both hold (size 0 when none).
  LayerRange shared(LayerRange other) const {
    const int b = begin > other.begin ? begin : other.begin;
    const int e = end < other.end ? end : other.end;
    return {b, e > b ? e : b};
  }
  bool operator==(const LayerRange&) const = default;
};

// A row-major rows x cols matrix (or, for the embedding, a table of rows) of any weight type
// (weight_types.hpp).
struct Matrix {
  WeightType type = WeightType::f32;
  const void* data = nullptr;     // the type's blocks; null when this process does not hold it
  const float* scales = nullptr;  // a type with its scales apart: rows*cols/group_size of them
  int rows = 0;
  int cols = 0;
  int group_size = 0;  // values a scale covers (a type with its scales apart)

  // The bytes of its values and, if apart, its scales.
  std::size_t bytes() const;
  // The matrix as its type's kernels take it, from row r on.
  kernels::Operand rows_from(int r) const;
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

struct LoadOptions {
  std::optional<LayerRange> layers;  // default: all of them
  bool mmap = false;                 // leave the weights mapped instead of copying them
  // Quantize f32/f16 matrices while loading (a type with WeightTypeInfo::quantize_on_load:
  // q8_0 or q4_0); matrices whose rows are not whole blocks of it stay as they are.
  std::optional<WeightType> quantize;
  // Called as weights are placed: bytes done, bytes in all.
  std::function<void(uint64_t, uint64_t)> progress;
};

struct Model {
  std::string path;
  std::string format;  // e.g. "llama2.c v0 (legacy)", "GGUF v3"
  ModelConfig config;
  Matrix token_embedding;  // vocab x dim
  std::vector<LayerWeights> layers;
  const float* rms_final = nullptr;  // dim
  Matrix classifier;                 // vocab x dim; the embedding itself when shared
  bool shared_classifier = false;
  LayerRange loaded;                 // the layers whose weights are in place
  std::shared_ptr<const void> storage;  // owns the mapping or the private copy

  bool has_embedding() const { return token_embedding.data != nullptr; }
  bool has_head() const { return classifier.data != nullptr && rms_final != nullptr; }
  // Bytes of weights read to produce one token with all layers: every layer, the final norm and
  // the classifier.
  std::size_t bytes_per_token() const;
  // The weights this process holds.
  std::size_t resident_weight_bytes() const;
};

// Loads a model file (a llama2.c checkpoint or a GGUF file, told apart by their first bytes).
// Every header field and tensor extent is checked against the file size before anything is
// read; problems throw InputError naming the file.
Model load_model(const std::string& path, const LoadOptions& options = {});

// The parsers: a Model whose matrices are views into `file` (placed by load_model).
Model parse_llama2c_checkpoint(const MappedFile& file);

}  // namespace troupe
