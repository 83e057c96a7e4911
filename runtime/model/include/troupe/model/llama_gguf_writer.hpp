// Writing llama-architecture GGUF files (troupe convert, troupe synth): the tensor layout and a
// streaming writer that turns rows of floats from any source into the bytes of any weight type
// with a ggml type (weight_types.hpp) straight in the output, spread over threads.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "troupe/model/gguf.hpp"
#include "troupe/model/llama_gguf.hpp"
#include "troupe/model/model.hpp"

namespace troupe {

// The ggml type of a weight type's name (the --type values: "f32", "f16", "q8_0", "q4_0");
// nullopt for anything else.
std::optional<GgmlType> parse_ggml_weight_type(std::string_view name);
// general.file_type as llama.cpp numbers it (llama_ftype: WeightTypeInfo::llama_file_type);
// throws InputError for a type without one.
uint32_t llama_file_type(GgmlType type);

// What each tensor of the llama architecture is (LlamaTensor::kind).
enum class LlamaTensorKind {
  token_embedding, output_norm, output,
  attn_q, attn_k, attn_v, attn_output, attn_norm, ffn_gate, ffn_down, ffn_up, ffn_norm,
};

// One tensor as it will be written: `rows` rows of `cols` values (ne = {cols, rows}; a norm is
// one row of dim values, ne = {dim}).
struct LlamaTensor {
  std::string name;
  LlamaTensorKind kind = LlamaTensorKind::token_embedding;
  int layer = -1;  // for per-layer tensors
  int rows = 1;
  int cols = 0;
  bool matrix = false;  // false: a norm vector (always f32)
  GgmlType type = GgmlType::f32;
  std::vector<uint64_t> dims() const;
  uint64_t bytes() const;
};

struct LlamaGgufLayout {
  std::vector<LlamaTensor> tensors;  // in llama.cpp's order (see llama_gguf_layout)
  // Matrices written in f32 rather than the requested quantized type because their rows do not
  // hold whole blocks of it (stories260K's ffn_down: 172 values a row, not 32-value blocks).
  std::vector<std::string> widened;
  uint64_t weight_bytes = 0;  // tensor data, without alignment padding
};

// The tensors of a model of `config` (config.n_layers layers), matrices of `type`, norms f32,
// in llama.cpp's order: token_embd, output_norm, output (left out when `tied`: llama.cpp reads a
// missing output.weight as tied to the embedding), then per layer attn_q, attn_k, attn_v,
// attn_output, attn_norm, ffn_gate, ffn_down, ffn_up, ffn_norm.
LlamaGgufLayout llama_gguf_layout(const ModelConfig& config, bool tied, GgmlType type);

// Writes row `row` of tensor `t` as t.cols floats. Called from several threads at once.
using LlamaRowSource = std::function<void(const LlamaTensor& t, int row, float* out)>;

struct LlamaGgufOptions {
  std::string name;                 // general.name
  GgmlType type = GgmlType::f32;    // of the matrices
  bool tied = false;                // no output.weight
  int threads = 0;                  // 0: one per core
  // Sets the tokenizer.* keys (set_tokenizer_metadata, or keys copied from another file).
  std::function<void(GgufWriter&)> tokenizer;
  // Data bytes written so far of the total, called from the writing thread now and then.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// Throws InputError naming `path` unless a file can be created there (the directory exists and
// is writable, the path is not a directory). Leaves nothing behind.
void check_output_path(const std::string& path);

// Writes a whole llama GGUF file: general.* and llama.* metadata from `config`, the tokenizer,
// then every tensor of llama_gguf_layout, streamed: each tensor's rows come from `source` into
// the output buffer and are converted there (kernels::quantize_row of the type). The same
// inputs give the same bytes whatever the thread count. Throws InputError for bad shapes and
// RuntimeFailure for I/O errors.
void write_llama_gguf(const std::string& path, const ModelConfig& config,
                      const LlamaGgufOptions& options, const LlamaRowSource& source);

}  // namespace troupe
