// The `llama` architecture in GGUF: tensor names and metadata keys as llama.cpp writes them,
// shared by the reader (load_model) and the writers (convert, synth).
#pragma once

#include <functional>
#include <string>

#include "troupe/model/gguf.hpp"
#include "troupe/model/model.hpp"

namespace troupe {

class GgufFile;

namespace llama_gguf {
// Whole-model tensors.
inline const char* kTokenEmbedding = "token_embd.weight";  // ne = {dim, vocab}
inline const char* kOutputNorm = "output_norm.weight";     // {dim}
inline const char* kOutput = "output.weight";              // {dim, vocab}; absent = tied
// Per-layer tensors: blk.N.<name>.
inline std::string layer(int n, const char* name) { return "blk." + std::to_string(n) + "." + name; }
inline const char* kAttnNorm = "attn_norm.weight";      // {dim}
inline const char* kAttnQ = "attn_q.weight";            // {dim, dim}
inline const char* kAttnK = "attn_k.weight";            // {dim, kv_dim}
inline const char* kAttnV = "attn_v.weight";            // {dim, kv_dim}
inline const char* kAttnOutput = "attn_output.weight";  // {dim, dim}
inline const char* kFfnNorm = "ffn_norm.weight";        // {dim}
inline const char* kFfnGate = "ffn_gate.weight";        // w1 {dim, hidden}
inline const char* kFfnDown = "ffn_down.weight";        // w2 {hidden, dim}
inline const char* kFfnUp = "ffn_up.weight";            // w3 {dim, hidden}
}  // namespace llama_gguf

// Reads a GGUF file of the llama architecture into a Model whose matrices are views into the
// file's mapping (tensors of the ggml types a WeightType maps to, weight_types.hpp; load_model
// places them). Throws
// InputError naming the file and the missing or malformed key or tensor.
Model parse_gguf_model(const GgufFile& file);

// Writes config's hyper-parameters under llama.* and general.* keys (general.file_type from
// `type`).
void set_llama_metadata(GgufWriter& w, const ModelConfig& config, GgmlType type,
                        const std::string& name);

}  // namespace troupe
