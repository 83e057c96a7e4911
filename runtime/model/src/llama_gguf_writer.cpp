// Writing llama-architecture GGUF files: metadata as llama.cpp writes it and the streaming tensor
// writer that convert and synth share (their vocabularies: text/gguf_vocabulary.hpp).
#include "troupe/model/llama_gguf_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>

#include "troupe/kernels/kernels.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/thread_pool.hpp"
#include "troupe/model/weight_types.hpp"

namespace troupe {

std::optional<GgmlType> parse_ggml_weight_type(std::string_view name) {
  const std::optional<WeightType> type = find_weight_type(name);
  if (!type) return std::nullopt;
  return weight_type_info(*type).ggml;
}

namespace {
// The weight type a ggml type is written from; throws InputError for one troupe does not write.
WeightType written_type(GgmlType type) {
  const std::optional<WeightType> t = weight_type_of_ggml(static_cast<uint32_t>(type));
  if (!t) {
    throw InputError("ggml type " + ggml_type_name(static_cast<uint32_t>(type)) +
                     " is not written by troupe");
  }
  return *t;
}
}  // namespace

uint32_t llama_file_type(GgmlType type) {
  const std::optional<WeightType> t = weight_type_of_ggml(static_cast<uint32_t>(type));
  if (!t || !weight_type_info(*t).llama_file_type) {
    throw InputError("ggml type " + ggml_type_name(static_cast<uint32_t>(type)) +
                     " has no llama.cpp file type");
  }
  return *weight_type_info(*t).llama_file_type;
}

void set_llama_metadata(GgufWriter& w, const ModelConfig& c, GgmlType type, const std::string& name) {
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", name);
  w.set_u32("general.file_type", llama_file_type(type));
  if (kernels::type_traits(written_type(type)).quantized) {
    w.set_u32("general.quantization_version", 2);  // GGML_QNT_VERSION
  }
  w.set_u32("llama.context_length", static_cast<uint32_t>(c.seq_len));
  w.set_u32("llama.embedding_length", static_cast<uint32_t>(c.dim));
  w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(c.hidden_dim));
  w.set_u32("llama.block_count", static_cast<uint32_t>(c.n_layers));
  w.set_u32("llama.attention.head_count", static_cast<uint32_t>(c.n_heads));
  w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
  w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(c.head_size()));
  w.set_f32("llama.rope.freq_base", c.rope_theta);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", c.rms_eps);
  w.set_u32("llama.vocab_size", static_cast<uint32_t>(c.vocab_size));
}

std::vector<uint64_t> LlamaTensor::dims() const {
  if (!matrix) return {static_cast<uint64_t>(cols)};
  return {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)};
}

uint64_t LlamaTensor::bytes() const {
  return ggml_type_bytes(type, static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols));
}

LlamaGgufLayout llama_gguf_layout(const ModelConfig& c, bool tied, GgmlType type) {
  if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers < 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
      c.vocab_size <= 0 || !c.shape_problem().empty()) {
    throw InputError("not a usable model shape (dim " + std::to_string(c.dim) + ", hidden " +
                     std::to_string(c.hidden_dim) + ", layers " + std::to_string(c.n_layers) +
                     ", heads " + std::to_string(c.n_heads) + ", kv heads " +
                     std::to_string(c.n_kv_heads) + ", vocab " + std::to_string(c.vocab_size) + ")");
  }
  LlamaGgufLayout layout;
  const int block = ggml_block_size(type);
  auto add = [&](std::string name, LlamaTensorKind kind, int layer, int rows, int cols, bool matrix) {
    LlamaTensor t;
    t.name = std::move(name);
    t.kind = kind;
    t.layer = layer;
    t.rows = rows;
    t.cols = cols;
    t.matrix = matrix;
    t.type = GgmlType::f32;
    if (matrix) {
      t.type = type;
      if (cols % block != 0) {
        t.type = GgmlType::f32;
        layout.widened.push_back(t.name);
      }
    }
    layout.weight_bytes += t.bytes();
    layout.tensors.push_back(std::move(t));
  };
  using K = LlamaTensorKind;
  namespace g = llama_gguf;
  const int dim = c.dim, kv = c.kv_dim(), hid = c.hidden_dim;
  add(g::kTokenEmbedding, K::token_embedding, -1, c.vocab_size, dim, true);
  add(g::kOutputNorm, K::output_norm, -1, 1, dim, false);
  if (!tied) add(g::kOutput, K::output, -1, c.vocab_size, dim, true);
  for (int l = 0; l < c.n_layers; l++) {
    add(g::layer(l, g::kAttnQ), K::attn_q, l, dim, dim, true);
    add(g::layer(l, g::kAttnK), K::attn_k, l, kv, dim, true);
    add(g::layer(l, g::kAttnV), K::attn_v, l, kv, dim, true);
    add(g::layer(l, g::kAttnOutput), K::attn_output, l, dim, dim, true);
    add(g::layer(l, g::kAttnNorm), K::attn_norm, l, 1, dim, false);
    add(g::layer(l, g::kFfnGate), K::ffn_gate, l, hid, dim, true);
    add(g::layer(l, g::kFfnDown), K::ffn_down, l, dim, hid, true);
    add(g::layer(l, g::kFfnUp), K::ffn_up, l, hid, dim, true);
    add(g::layer(l, g::kFfnNorm), K::ffn_norm, l, 1, dim, false);
  }
  return layout;
}

namespace {

uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Bytes one row of `cols` values takes in `type`.
std::size_t row_bytes(GgmlType type, int cols) {
  return static_cast<std::size_t>(ggml_type_bytes(type, static_cast<uint64_t>(cols)));
}

// Fills one tensor's bytes: rows in chunks of about kChunkBytes, each chunk split over the
// pool's threads (every row is computed from the source alone, so the split changes nothing),
// progress reported between chunks.
class TensorFiller {
 public:
  static constexpr std::size_t kChunkBytes = std::size_t(8) << 20;

  TensorFiller(ThreadPool& pool, const LlamaRowSource& source) : pool_(pool), source_(source) {
    scratch_.resize(pool.size());
  }

  void fill(const LlamaTensor& t, std::span<std::byte> out,
            const std::function<void(uint64_t)>& on_bytes) {
    const std::size_t rb = row_bytes(t.type, t.cols);
    if (out.size() < rb * static_cast<std::size_t>(t.rows)) {
      throw RuntimeFailure("tensor '" + t.name + "': output buffer too small");
    }
    const int chunk_rows = static_cast<int>(std::max<std::size_t>(1, kChunkBytes / std::max<std::size_t>(rb, 1)));
    for (int r0 = 0; r0 < t.rows; r0 += chunk_rows) {
      const int r1 = std::min(t.rows, r0 + chunk_rows);
      const int n = r1 - r0;
      if (n < 4 || pool_.size() == 1) {
        rows(t, out, rb, r0, r1, 0);
      } else {
        pool_.run(pool_.size(), [&](int chunk, int thread) {
          const Range range = split_range(n, pool_.size(), chunk);
          if (range.begin < range.end) rows(t, out, rb, r0 + range.begin, r0 + range.end, thread);
        });
      }
      if (on_bytes) on_bytes(static_cast<uint64_t>(r1) * rb);
    }
  }

 private:
  // Rows [r0, r1) from the source as floats, then into the tensor's type (quantize_row).
  void rows(const LlamaTensor& t, std::span<std::byte> out, std::size_t rb, int r0, int r1, int thread) {
    const WeightType type = written_type(t.type);
    std::vector<float>& buf = scratch_[thread];
    buf.resize(static_cast<std::size_t>(t.cols));
    for (int r = r0; r < r1; r++) {
      source_(t, r, buf.data());
      kernels::quantize_row(type, out.data() + static_cast<std::size_t>(r) * rb, buf.data(), t.cols);
    }
  }

  ThreadPool& pool_;
  const LlamaRowSource& source_;
  std::vector<std::vector<float>> scratch_;
};

}  // namespace

void check_output_path(const std::string& path) {
  if (path.empty()) throw InputError("--out: no file name given");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw InputError(path + ": is a directory (give --out a file name)");
  }
  // The writer creates path + ".tmp" and renames it into place: try exactly that.
  const std::string tmp = path + ".tmp";
  const bool existed = ::access(tmp.c_str(), F_OK) == 0;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw InputError(path + ": cannot write there: " + std::strerror(errno));
  ::close(fd);
  if (!existed) ::unlink(tmp.c_str());
}

void write_llama_gguf(const std::string& path, const ModelConfig& config,
                      const LlamaGgufOptions& options, const LlamaRowSource& source) {
  const LlamaGgufLayout layout = llama_gguf_layout(config, options.tied, options.type);
  GgufWriter w;
  set_llama_metadata(w, config, options.type, options.name);
  if (options.tokenizer) options.tokenizer(w);

  // Where each tensor's data starts (the writer aligns every tensor to 32 bytes), for progress
  // inside a tensor.
  constexpr uint64_t kAlignment = 32;
  uint64_t total = 0;
  std::vector<uint64_t> start;
  for (const LlamaTensor& t : layout.tensors) {
    start.push_back(total);
    total += round_up(t.bytes(), kAlignment);
  }

  ThreadPool pool(options.threads);
  TensorFiller filler(pool, source);
  const auto& progress = options.progress;
  for (std::size_t i = 0; i < layout.tensors.size(); i++) {
    const LlamaTensor* t = &layout.tensors[i];
    const uint64_t at = start[i];
    w.add_tensor(t->name, t->dims(), t->type, [&filler, &progress, t, at, total](std::span<std::byte> out) {
      filler.fill(*t, out, [&](uint64_t done) {
        if (progress) progress(at + done, total);
      });
    });
  }
  w.write(path, [&](uint64_t done, uint64_t all) {
    if (progress) progress(done, all);
  });
}

}  // namespace troupe
