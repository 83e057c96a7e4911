// Reader for llama2.c checkpoints.
//
// Version 0 (run.c's legacy layout): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len; negative vocab_size = classifier not shared), then fp32 tensors: embedding,
// rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, two RoPE tables run.c skips, and the
// classifier when unshared.
// Versions 1 and 2 (export.py): a 256-byte header (magic "ak42", version, the 7 ints with a
// positive vocab_size, a shared-classifier byte, for version 2 the int32 group size), then the
// norms, then the matrices (version 2: each as int8 values followed by its f32 group scales).
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "troupe/model/error.hpp"
#include "troupe/model/model.hpp"

namespace troupe {
namespace {

constexpr uint32_t kMagic = 0x616b3432;  // "ak42"
constexpr std::size_t kHeaderBytes = 256;

// Walks the file in order, handing out tensors only after checking they lie inside it.
class Cursor {
 public:
  Cursor(const MappedFile& file, std::size_t offset) : file_(file), offset_(offset) {}

  const float* floats(uint64_t count, const char* what) {
    return reinterpret_cast<const float*>(take(count, sizeof(float), what));
  }
  const int8_t* int8s(uint64_t count, const char* what) {
    return reinterpret_cast<const int8_t*>(take(count, 1, what));
  }
  void skip_floats(uint64_t count, const char* what) { take(count, sizeof(float), what); }
  std::size_t offset() const { return offset_; }

 private:
  const std::byte* take(uint64_t count, uint64_t elem, const char* what) {
    const uint64_t size = file_.size();
    if (count > size / elem || offset_ > size - count * elem) {
      throw InputError(file_.path() + ": truncated: the " + what + " tensor needs " +
                       std::to_string(count * elem) + " bytes at offset " +
                       std::to_string(offset_) + " but the file has " + std::to_string(size) +
                       " bytes");
    }
    const std::byte* p = file_.bytes().data() + offset_;
    offset_ += count * elem;
    return p;
  }

  const MappedFile& file_;
  std::size_t offset_;
};

int32_t read_i32(const MappedFile& f, std::size_t at) {
  int32_t v;
  std::memcpy(&v, f.bytes().data() + at, sizeof v);
  return v;
}

void check_config(const std::string& path, ModelConfig& c) {
  auto bad = [&](const std::string& why) {
    throw InputError(path + ": not a usable llama2.c checkpoint: " + why);
  };
  auto in_range = [&](const char* name, int v, int hi) {
    if (v <= 0 || v > hi) bad(std::string(name) + " = " + std::to_string(v) + " is out of range");
  };
  in_range("dim", c.dim, 1 << 16);
  in_range("hidden_dim", c.hidden_dim, 1 << 18);
  in_range("n_layers", c.n_layers, 1 << 10);
  in_range("n_heads", c.n_heads, 1 << 10);
  in_range("n_kv_heads", c.n_kv_heads, 1 << 10);
  in_range("vocab_size", c.vocab_size, 1 << 22);
  in_range("seq_len", c.seq_len, 1 << 20);
  if (c.vocab_size < 3) bad("vocab_size " + std::to_string(c.vocab_size) + " leaves no room for BOS and EOS");
  if (const std::string problem = c.shape_problem(); !problem.empty()) bad(problem);
}

// Reads the seven header ints; the sign of vocab_size says whether the classifier is shared.
ModelConfig read_config(const MappedFile& f, std::size_t at, bool& shared) {
  ModelConfig c;
  c.dim = read_i32(f, at + 0);
  c.hidden_dim = read_i32(f, at + 4);
  c.n_layers = read_i32(f, at + 8);
  c.n_heads = read_i32(f, at + 12);
  c.n_kv_heads = read_i32(f, at + 16);
  int32_t vocab = read_i32(f, at + 20);
  c.seq_len = read_i32(f, at + 24);
  shared = vocab > 0;
  c.vocab_size = vocab == std::numeric_limits<int32_t>::min() ? 0 : (vocab < 0 ? -vocab : vocab);
  return c;
}

Matrix f32_matrix(Cursor& cur, int rows, int cols, const char* what) {
  Matrix m;
  m.type = WeightType::f32;
  m.rows = rows;
  m.cols = cols;
  m.data = cur.floats(uint64_t(rows) * uint64_t(cols), what);
  return m;
}

Matrix q8_matrix(Cursor& cur, int rows, int cols, int group_size, const char* what) {
  Matrix m;
  m.type = WeightType::q8_groups;
  m.rows = rows;
  m.cols = cols;
  m.group_size = group_size;
  const uint64_t n = uint64_t(rows) * uint64_t(cols);
  m.data = cur.int8s(n, what);
  m.scales = cur.floats(n / group_size, what);
  return m;
}

void read_v0(Model& m, Cursor& cur) {
  const ModelConfig& c = m.config;
  const int L = c.n_layers, dim = c.dim, kv = c.kv_dim(), hid = c.hidden_dim;
  m.token_embedding = f32_matrix(cur, c.vocab_size, dim, "token embedding");
  m.layers.resize(L);
  // Each kind of tensor is stored for all layers together: one block per kind.
  auto per_layer = [&](auto assign, int rows, int cols, const char* what) {
    for (int l = 0; l < L; l++) assign(m.layers[l], f32_matrix(cur, rows, cols, what));
  };
  for (int l = 0; l < L; l++) m.layers[l].rms_att = cur.floats(dim, "rms_att");
  per_layer([](LayerWeights& w, Matrix x) { w.wq = x; }, dim, dim, "wq");
  per_layer([](LayerWeights& w, Matrix x) { w.wk = x; }, kv, dim, "wk");
  per_layer([](LayerWeights& w, Matrix x) { w.wv = x; }, kv, dim, "wv");
  per_layer([](LayerWeights& w, Matrix x) { w.wo = x; }, dim, dim, "wo");
  for (int l = 0; l < L; l++) m.layers[l].rms_ffn = cur.floats(dim, "rms_ffn");
  per_layer([](LayerWeights& w, Matrix x) { w.w1 = x; }, hid, dim, "w1");
  per_layer([](LayerWeights& w, Matrix x) { w.w2 = x; }, dim, hid, "w2");
  per_layer([](LayerWeights& w, Matrix x) { w.w3 = x; }, hid, dim, "w3");
  m.rms_final = cur.floats(dim, "rms_final");
  if (m.shared_classifier) {
    m.classifier = m.token_embedding;
  } else {
    const uint64_t rope_table = uint64_t(c.seq_len) * uint64_t(c.head_size()) / 2;
    cur.skip_floats(2 * rope_table, "RoPE table");
    m.classifier = f32_matrix(cur, c.vocab_size, dim, "classifier");
  }
}

void read_v1_v2(Model& m, Cursor& cur, int version, int gs) {
  const ModelConfig& c = m.config;
  const int L = c.n_layers, dim = c.dim, kv = c.kv_dim(), hid = c.hidden_dim;
  m.layers.resize(L);
  for (int l = 0; l < L; l++) m.layers[l].rms_att = cur.floats(dim, "rms_att");
  for (int l = 0; l < L; l++) m.layers[l].rms_ffn = cur.floats(dim, "rms_ffn");
  m.rms_final = cur.floats(dim, "rms_final");
  auto matrix = [&](int rows, int cols, const char* what) {
    return version == 1 ? f32_matrix(cur, rows, cols, what) : q8_matrix(cur, rows, cols, gs, what);
  };
  m.token_embedding = matrix(c.vocab_size, dim, "token embedding");
  for (int l = 0; l < L; l++) m.layers[l].wq = matrix(dim, dim, "wq");
  for (int l = 0; l < L; l++) m.layers[l].wk = matrix(kv, dim, "wk");
  for (int l = 0; l < L; l++) m.layers[l].wv = matrix(kv, dim, "wv");
  for (int l = 0; l < L; l++) m.layers[l].wo = matrix(dim, dim, "wo");
  for (int l = 0; l < L; l++) m.layers[l].w1 = matrix(hid, dim, "w1");
  for (int l = 0; l < L; l++) m.layers[l].w2 = matrix(dim, hid, "w2");
  for (int l = 0; l < L; l++) m.layers[l].w3 = matrix(hid, dim, "w3");
  m.classifier = m.shared_classifier ? m.token_embedding : matrix(c.vocab_size, dim, "classifier");
}

}  // namespace

Model parse_llama2c_checkpoint(const MappedFile& file) {
  Model m;
  m.path = file.path();
  const std::string& path = m.path;
  if (file.size() < 28) {
    throw InputError(path + ": too small to be a model (" + std::to_string(file.size()) +
                     " bytes; a llama2.c header alone is 28)");
  }
  uint32_t magic;
  std::memcpy(&magic, file.bytes().data(), sizeof magic);
  int version = 0;
  int group_size = 0;
  std::size_t data_start = 28;
  bool shared = false;
  if (magic == kMagic) {
    if (file.size() < kHeaderBytes) throw InputError(path + ": truncated header");
    version = read_i32(file, 4);
    if (version != 1 && version != 2) {
      throw InputError(path + ": llama2.c checkpoint version " + std::to_string(version) +
                       " is not supported (versions 0, 1 and 2 are)");
    }
    m.config = read_config(file, 8, shared);
    if (m.config.vocab_size > 0 && read_i32(file, 20) < 0) {
      throw InputError(path + ": negative vocab_size in a version " + std::to_string(version) +
                       " header");
    }
    shared = std::to_integer<uint8_t>(file.bytes()[36]) != 0;
    if (version == 2) {
      group_size = read_i32(file, 37);
    }
    data_start = kHeaderBytes;
  } else {
    m.config = read_config(file, 0, shared);
  }
  check_config(path, m.config);
  if (version == 2) {
    // Every matrix-vector product quantizes its input in groups along a row, so both input
    // widths must hold whole groups (run.q would silently drop a tail otherwise).
    if (group_size <= 0 || m.config.dim % group_size != 0 ||
        m.config.hidden_dim % group_size != 0) {
      throw InputError(path + ": group size " + std::to_string(group_size) +
                       " does not divide dim " + std::to_string(m.config.dim) +
                       " and hidden_dim " + std::to_string(m.config.hidden_dim));
    }
  }
  m.shared_classifier = shared;
  m.format = "llama2.c v" + std::to_string(version) + (version == 0 ? " (legacy)" : "");
  Cursor cur(file, data_start);
  if (version == 0) {
    read_v0(m, cur);
  } else {
    read_v1_v2(m, cur, version, group_size);
  }
  return m;
}

}  // namespace troupe
