// Writing llama-architecture GGUF files: metadata as llama.cpp writes it, the vocabularies of
// convert and synth, and the streaming tensor writer they share.
#include "troupe/runtime/llama_gguf_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <span>

#include "troupe/kernels/kernels.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/thread_pool.hpp"

namespace troupe {

std::optional<GgmlType> parse_ggml_weight_type(std::string_view name) {
  if (name == "f32") return GgmlType::f32;
  if (name == "f16") return GgmlType::f16;
  if (name == "q8_0") return GgmlType::q8_0;
  if (name == "q4_0") return GgmlType::q4_0;
  return std::nullopt;
}

uint32_t llama_file_type(GgmlType type) {
  switch (type) {
    case GgmlType::f32: return 0;   // LLAMA_FTYPE_ALL_F32
    case GgmlType::f16: return 1;   // LLAMA_FTYPE_MOSTLY_F16
    case GgmlType::q4_0: return 2;  // LLAMA_FTYPE_MOSTLY_Q4_0
    case GgmlType::q8_0: return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
  }
  throw InputError("ggml type " + ggml_type_name(static_cast<uint32_t>(type)) +
                   " has no llama.cpp file type");
}

void set_llama_metadata(GgufWriter& w, const ModelConfig& c, GgmlType type, const std::string& name) {
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", name);
  w.set_u32("general.file_type", llama_file_type(type));
  if (type == GgmlType::q8_0 || type == GgmlType::q4_0) {
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

void set_tokenizer_metadata(GgufWriter& w, const Vocabulary& vocab, const std::string& model_kind) {
  const std::size_t n = vocab.pieces.size();
  w.set_string("tokenizer.ggml.model", model_kind);
  if (!vocab.pretokenizer.empty()) w.set_string("tokenizer.ggml.pre", vocab.pretokenizer);
  w.set_string_array("tokenizer.ggml.tokens", vocab.pieces);
  if (vocab.scores.size() == n) w.set_f32_array("tokenizer.ggml.scores", vocab.scores);
  if (vocab.types.size() == n) {
    std::vector<int32_t> types(n);
    for (std::size_t i = 0; i < n; i++) types[i] = static_cast<int32_t>(vocab.types[i]);
    w.set_i32_array("tokenizer.ggml.token_type", types);
  }
  if (!vocab.merge_text.empty()) w.set_string_array("tokenizer.ggml.merges", vocab.merge_text);
  const SpecialTokens& s = vocab.special;
  auto id = [&](const char* key, int v) {
    if (v >= 0 && static_cast<std::size_t>(v) < n) w.set_u32(key, static_cast<uint32_t>(v));
  };
  id("tokenizer.ggml.bos_token_id", s.bos);
  id("tokenizer.ggml.eos_token_id", s.eos);
  id("tokenizer.ggml.unknown_token_id", s.unk);
  id("tokenizer.ggml.eot_token_id", s.eot);
  w.set_bool("tokenizer.ggml.add_bos_token", s.add_bos);
  w.set_bool("tokenizer.ggml.add_eos_token", false);
  // llama.cpp's default is a space prefix for SentencePiece only; say so where it differs.
  if (vocab.add_space_prefix != (model_kind == "llama")) {
    w.set_bool("tokenizer.ggml.add_space_prefix", vocab.add_space_prefix);
  }
}

Vocabulary gguf_vocabulary_from_llama2c(const Vocabulary& in) {
  static const std::string kSpace = "\xE2\x96\x81";  // ▁ U+2581
  Vocabulary v;
  const int n = in.size();
  v.pieces.resize(n);
  v.scores.assign(n, 0.0f);
  v.types.assign(n, TokenType::normal);
  for (int i = 0; i < n; i++) {
    const std::string& piece = in.pieces[i];
    std::string text;
    if (i == 0) {
      text = "<unk>";
      v.types[i] = TokenType::unknown;
    } else if (i == 1 || i == 2) {
      text = i == 1 ? "<s>" : "</s>";
      v.types[i] = TokenType::control;
    } else {
      text = piece;
      // llama.cpp tests with sscanf("<0x%02hhX>"): "<0x" and a hex digit make a byte token.
      if (piece.size() >= 4 && piece.compare(0, 3, "<0x") == 0 &&
          std::isxdigit(static_cast<unsigned char>(piece[3]))) {
        v.types[i] = TokenType::byte;
      }
    }
    std::string escaped;
    escaped.reserve(text.size());
    for (char c : text) {
      if (c == ' ') {
        escaped += kSpace;
      } else {
        escaped += c;
      }
    }
    v.pieces[i] = std::move(escaped);
    if (i < static_cast<int>(in.scores.size())) v.scores[i] = in.scores[i];
  }
  v.special = SpecialTokens{};  // bos 1, eos 2, unk 0, no eot, add_bos
  v.add_space_prefix = true;
  v.index();
  return v;
}

Vocabulary synthetic_vocabulary(int size) {
  if (size < 3) {
    throw InputError("a vocabulary of " + std::to_string(size) +
                     " tokens has no room for <unk>, <s> and </s>");
  }
  Vocabulary v;
  v.pieces.reserve(size);
  v.scores.reserve(size);
  v.types.reserve(size);
  auto add = [&](std::string piece, float score, TokenType type) {
    v.pieces.push_back(std::move(piece));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0.0f, TokenType::unknown);
  add("<s>", 0.0f, TokenType::control);
  add("</s>", 0.0f, TokenType::control);
  static const char* const kHex = "0123456789ABCDEF";
  for (int b = 0; b < 256 && v.size() < size; b++) {
    add(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">", 0.0f, TokenType::byte);
  }
  // The word boundary on its own, so that spaces encode as "▁" rather than as its three bytes.
  if (v.size() < size) add("\xE2\x96\x81", 0.0f, TokenType::normal);
  const int first_filler = v.size();
  for (int id = first_filler; id < size; id++) {
    add("\xE2\x96\x81w" + std::to_string(id), -static_cast<float>(id - first_filler), TokenType::normal);
  }
  v.special = SpecialTokens{};
  v.add_space_prefix = true;
  v.index();
  return v;
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
  void rows(const LlamaTensor& t, std::span<std::byte> out, std::size_t rb, int r0, int r1, int thread) {
    std::byte* base = out.data();
    if (t.type == GgmlType::f32) {
      // Straight into the output.
      for (int r = r0; r < r1; r++) {
        source_(t, r, reinterpret_cast<float*>(base + static_cast<std::size_t>(r) * rb));
      }
      return;
    }
    std::vector<float>& buf = scratch_[thread];
    buf.resize(static_cast<std::size_t>(t.cols));
    for (int r = r0; r < r1; r++) {
      source_(t, r, buf.data());
      std::byte* dst = base + static_cast<std::size_t>(r) * rb;
      switch (t.type) {
        case GgmlType::f16: {
          auto* h = reinterpret_cast<uint16_t*>(dst);
          for (int j = 0; j < t.cols; j++) h[j] = kernels::fp32_to_fp16(buf[j]);
          break;
        }
        case GgmlType::q8_0:
          kernels::quantize_row_q8_0(reinterpret_cast<kernels::BlockQ8_0*>(dst), buf.data(), t.cols);
          break;
        case GgmlType::q4_0:
          kernels::quantize_row_q4_0(reinterpret_cast<kernels::BlockQ4_0*>(dst), buf.data(), t.cols);
          break;
        case GgmlType::f32:
          break;
      }
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
