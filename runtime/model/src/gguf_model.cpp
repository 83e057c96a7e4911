// The llama architecture read from GGUF: hyper-parameters from llama.* metadata, matrices as
// views of the tensors named in llama_gguf.hpp.
#include <cmath>
#include <limits>

#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"
#include "troupe/model/llama_gguf.hpp"
#include "troupe/model/weight_types.hpp"

namespace troupe {

namespace {

int required_int(const GgufFile& f, const std::string& key, int64_t lo, int64_t hi) {
  const auto v = f.get_int(key);
  if (!v) throw InputError(f.path() + ": missing metadata key " + key);
  if (*v < lo || *v > hi) {
    throw InputError(f.path() + ": " + key + " = " + std::to_string(*v) + " is out of range");
  }
  return static_cast<int>(*v);
}

WeightType weight_type(const GgufFile& f, const GgufTensorInfo& t) {
  if (const std::optional<WeightType> type = weight_type_of_ggml(t.type)) return *type;
  throw InputError(f.path() + ": tensor " + t.name + " has type " + ggml_type_name(t.type) +
                   ", which troupe does not run (" + list_names(named_weight_types(), " and ") +
                   " are supported)");
}

const GgufTensorInfo& tensor(const GgufFile& f, const std::string& name,
                             std::initializer_list<uint64_t> dims) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (!t) throw InputError(f.path() + ": missing tensor " + name);
  const std::vector<uint64_t> want(dims);
  if (t->dims != want) {
    std::string got, expect;
    // (Appending piece by piece: GCC 12 warns falsely, -Wrestrict, on "literal" + std::string.)
    for (auto d : t->dims) got.append(got.empty() ? "" : "x").append(std::to_string(d));
    for (auto d : want) expect.append(expect.empty() ? "" : "x").append(std::to_string(d));
    throw InputError(f.path() + ": tensor " + name + " has shape " + got + ", expected " + expect);
  }
  return *t;
}

Matrix matrix(const GgufFile& f, const std::string& name, int rows, int cols) {
  const GgufTensorInfo& t = tensor(f, name, {uint64_t(cols), uint64_t(rows)});
  Matrix m;
  m.type = weight_type(f, t);
  m.data = t.data;
  m.rows = rows;
  m.cols = cols;
  return m;
}

const float* vector(const GgufFile& f, const std::string& name, int n) {
  const GgufTensorInfo& t = tensor(f, name, {uint64_t(n)});
  if (t.type != static_cast<uint32_t>(GgmlType::f32)) {
    throw InputError(f.path() + ": tensor " + name + " must be f32, not " + ggml_type_name(t.type));
  }
  return reinterpret_cast<const float*>(t.data);
}

}  // namespace

Model parse_gguf_model(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture").value_or("");
  if (arch != "llama") {
    throw InputError(f.path() + ": architecture '" + (arch.empty() ? "(none)" : arch) +
                     "' is not supported (troupe runs 'llama')");
  }
  if (f.tensors().empty()) {
    throw InputError(f.path() + ": holds no tensors (a vocabulary-only file?)");
  }
  Model m;
  m.path = f.path();
  m.format = "GGUF v" + std::to_string(f.version());
  ModelConfig& c = m.config;
  c.dim = required_int(f, "llama.embedding_length", 1, 1 << 16);
  c.hidden_dim = required_int(f, "llama.feed_forward_length", 1, 1 << 18);
  c.n_layers = required_int(f, "llama.block_count", 1, 1 << 10);
  c.n_heads = required_int(f, "llama.attention.head_count", 1, 1 << 10);
  c.n_kv_heads = f.get_int("llama.attention.head_count_kv")
                     ? required_int(f, "llama.attention.head_count_kv", 1, 1 << 10)
                     : c.n_heads;
  c.seq_len = required_int(f, "llama.context_length", 1, 1 << 24);
  const GgufTensorInfo* embd = f.find_tensor(llama_gguf::kTokenEmbedding);
  if (!embd || embd->dims.size() != 2) {
    throw InputError(f.path() + ": missing tensor " + std::string(llama_gguf::kTokenEmbedding));
  }
  if (embd->dims[1] < 3 || embd->dims[1] > (1u << 22)) {
    throw InputError(f.path() + ": vocabulary of " + std::to_string(embd->dims[1]) + " tokens");
  }
  c.vocab_size = static_cast<int>(embd->dims[1]);
  c.rope_theta = static_cast<float>(f.get_float("llama.rope.freq_base").value_or(10000.0));
  c.rms_eps =
      static_cast<float>(f.get_float("llama.attention.layer_norm_rms_epsilon").value_or(1e-5));
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta) || !(c.rms_eps > 0) ||
      !std::isfinite(c.rms_eps)) {
    throw InputError(f.path() + ": rope base or rms epsilon is not a positive number");
  }
  if (const std::string problem = c.shape_problem(); !problem.empty()) {
    throw InputError(f.path() + ": " + problem);
  }
  if (auto rot = f.get_int("llama.rope.dimension_count"); rot && *rot != c.head_size()) {
    throw InputError(f.path() + ": partial rotary embeddings (rope.dimension_count " +
                     std::to_string(*rot) + " of head size " + std::to_string(c.head_size()) +
                     ") are not supported");
  }

  using namespace llama_gguf;
  const int kv = c.kv_dim(), dim = c.dim, hid = c.hidden_dim;
  m.token_embedding = matrix(f, kTokenEmbedding, c.vocab_size, dim);
  m.rms_final = vector(f, kOutputNorm, dim);
  m.shared_classifier = f.find_tensor(kOutput) == nullptr;
  m.classifier = m.shared_classifier ? m.token_embedding : matrix(f, kOutput, c.vocab_size, dim);
  m.layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; l++) {
    LayerWeights& w = m.layers[l];
    w.rms_att = vector(f, layer(l, kAttnNorm), dim);
    w.wq = matrix(f, layer(l, kAttnQ), dim, dim);
    w.wk = matrix(f, layer(l, kAttnK), kv, dim);
    w.wv = matrix(f, layer(l, kAttnV), kv, dim);
    w.wo = matrix(f, layer(l, kAttnOutput), dim, dim);
    w.rms_ffn = vector(f, layer(l, kFfnNorm), dim);
    w.w1 = matrix(f, layer(l, kFfnGate), hid, dim);
    w.w2 = matrix(f, layer(l, kFfnDown), dim, hid);
    w.w3 = matrix(f, layer(l, kFfnUp), hid, dim);
  }
  return m;
}

}  // namespace troupe
