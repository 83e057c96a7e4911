#include "troupe/model/model.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>

#include "troupe/kernels/kernels.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"
#include "troupe/model/llama_gguf.hpp"

namespace troupe {

std::string ModelConfig::shape_problem() const {
  if (dim % n_heads != 0) {
    return "dim " + std::to_string(dim) + " is not a multiple of n_heads " + std::to_string(n_heads);
  }
  if (n_heads % n_kv_heads != 0) {
    return "n_heads " + std::to_string(n_heads) + " is not a multiple of n_kv_heads " +
           std::to_string(n_kv_heads);
  }
  if (head_size() % 2 != 0) {
    return "head size " + std::to_string(head_size()) + " is odd (RoPE rotates pairs)";
  }
  return "";
}

std::size_t Matrix::bytes() const {
  const kernels::TypeTraits& t = kernels::type_traits(type);
  const std::size_t values = std::size_t(rows) * std::size_t(cols);
  return t.bytes_of(values) + (t.scales_apart ? values / group_size * sizeof(float) : 0);
}

kernels::Operand Matrix::rows_from(int r) const {
  return kernels::rows_from(type, kernels::Operand(data, scales, group_size), r, cols);
}

void Matrix::row(int r, float* out) const { kernels::dequantize_row(type, out, rows_from(r), cols); }

std::size_t LayerWeights::bytes() const {
  return wq.bytes() + wk.bytes() + wv.bytes() + wo.bytes() + w1.bytes() + w2.bytes() +
         w3.bytes();
}

std::size_t Model::bytes_per_token() const {
  std::size_t total = classifier.bytes() + std::size_t(config.dim) * sizeof(float);
  for (const auto& layer : layers) total += layer.bytes() + 2 * std::size_t(config.dim) * sizeof(float);
  return total;
}

std::size_t Model::resident_weight_bytes() const {
  std::size_t total = 0;
  if (has_embedding()) total += token_embedding.bytes();
  if (has_head()) total += (shared_classifier ? 0 : classifier.bytes()) + config.dim * sizeof(float);
  for (int l = loaded.begin; l < loaded.end; l++) {
    total += layers[l].bytes() + 2 * std::size_t(config.dim) * sizeof(float);
  }
  return total;
}

namespace {

// Private memory for weights: one anonymous mapping, asking for huge pages (fewer TLB misses
// while streaming gigabytes per token).
class Arena {
 public:
  explicit Arena(std::size_t bytes) : size_(bytes) {
    if (bytes == 0) return;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      throw RuntimeFailure("cannot allocate " + std::to_string(bytes >> 20) +
                           " MiB for the weights: " + std::strerror(errno));
    }
    ::madvise(p, bytes, MADV_HUGEPAGE);
    base_ = static_cast<std::byte*>(p);
  }
  ~Arena() {
    if (base_) ::munmap(base_, size_);
  }
  std::byte* take(std::size_t bytes) {
    std::byte* p = base_ + used_;
    used_ += (bytes + 63) / 64 * 64;  // 64-byte aligned: whole cache lines, aligned SIMD loads
    return p;
  }

 private:
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  std::size_t used_ = 0;
};

struct Source {
  std::shared_ptr<const void> keep_alive;  // the mapping
  const std::byte* base;
};

// Copies weights from the model file into the arena with pread rather than through the mapping:
// the file's pages are not faulted into this process one by one, and never count in its RSS.
class Copier {
 public:
  Copier(const std::string& path, const Source& src, Arena& arena)
      : path_(path), base_(src.base), arena_(arena), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw InputError(path + ": cannot open: " + std::strerror(errno));
  }
  ~Copier() { ::close(fd_); }
  Copier(const Copier&) = delete;
  Copier& operator=(const Copier&) = delete;

  // `bytes` from `from` (a pointer into the mapping) into the arena; returns where they went.
  std::byte* copy(const void* from, std::size_t bytes) {
    std::byte* to = arena_.take(bytes);
    const auto offset = static_cast<off_t>(static_cast<const std::byte*>(from) - base_);
    for (std::size_t done = 0; done < bytes;) {
      const ssize_t got = ::pread(fd_, to + done, bytes - done, offset + static_cast<off_t>(done));
      if (got <= 0) {
        throw InputError(path_ + ": read failed at offset " + std::to_string(offset + done));
      }
      done += static_cast<std::size_t>(got);
    }
    return to;
  }

 private:
  const std::string& path_;
  const std::byte* base_;
  Arena& arena_;
  int fd_;
};

// A matrix quantized on load: a plain-float matrix (f32, f16) whose rows are whole blocks of the
// target type.
bool quantizable(const Matrix& m, const LoadOptions& opt) {
  return opt.quantize && m.cols % kernels::type_traits(*opt.quantize).block == 0 &&
         !kernels::type_traits(m.type).quantized && m.type != *opt.quantize;
}

std::size_t quantized_bytes(const Matrix& m, WeightType to) {
  return kernels::type_traits(to).bytes_of(std::size_t(m.rows) * m.cols);
}

void quantize_matrix(const Matrix& src, WeightType to, std::byte* dst) {
  std::vector<float> row(src.cols);
  const std::size_t row_bytes = kernels::type_traits(to).bytes_of(src.cols);
  for (int r = 0; r < src.rows; r++) {
    src.row(r, row.data());
    kernels::quantize_row(to, dst + std::size_t(r) * row_bytes, row.data(), src.cols);
  }
}

std::size_t rounded(std::size_t bytes) { return (bytes + 63) / 64 * 64; }

// The layers load_model places, checked against the model; and the --quantize target checked.
LayerRange checked_range(const Model& m, const LoadOptions& opt) {
  const int n = m.config.n_layers;
  const LayerRange range = opt.layers.value_or(LayerRange{0, n});
  if (range.begin < 0 || range.end > n || range.begin >= range.end) {
    throw InputError(m.path + ": layers " + std::to_string(range.begin) + ":" +
                     std::to_string(range.end) + " are not within the model's 0:" +
                     std::to_string(n));
  }
  if (opt.quantize && !weight_type_info(*opt.quantize).quantize_on_load) {
    throw InputError("--quantize: only " + list_names(quantize_on_load_types(), " and ") +
                     " are supported");
  }
  return range;
}

// What a process running `range` holds: its layers, the embedding for the first stage, the final
// norm and classifier for the last (a shared classifier is the embedding table, placed once).
struct Held {
  std::vector<Matrix*> matrices;
  std::vector<const float**> norms;
};

Held held(Model& m, LayerRange range) {
  const bool first = range.begin == 0, last = range.end == m.config.n_layers;
  Held h;
  if (first || (last && m.shared_classifier)) h.matrices.push_back(&m.token_embedding);
  if (last && !m.shared_classifier) h.matrices.push_back(&m.classifier);
  if (last) h.norms.push_back(&m.rms_final);
  for (int l = range.begin; l < range.end; l++) {
    LayerWeights& w = m.layers[l];
    for (Matrix* x : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w1, &w.w2, &w.w3}) h.matrices.push_back(x);
    h.norms.push_back(&w.rms_att);
    h.norms.push_back(&w.rms_ffn);
  }
  return h;
}

// The private memory the held weights take: quantized matrices always, the rest unless mapped.
std::size_t arena_bytes(const Held& h, int dim, const LoadOptions& opt) {
  std::size_t total = 0;
  for (const Matrix* x : h.matrices) {
    if (quantizable(*x, opt)) {
      total += rounded(quantized_bytes(*x, *opt.quantize));
    } else if (!opt.mmap) {
      total += rounded(x->bytes()) + 64;  // values and scales apart: each rounded up
    }
  }
  if (!opt.mmap) total += h.norms.size() * rounded(dim * sizeof(float));
  return total;
}

// One matrix into private memory: quantized, or copied (its scales apart too), or left mapped.
void place_matrix(Matrix& x, const LoadOptions& opt, Arena& arena, Copier& copier) {
  if (quantizable(x, opt)) {
    std::byte* dst = arena.take(quantized_bytes(x, *opt.quantize));
    quantize_matrix(x, *opt.quantize, dst);
    x.type = *opt.quantize;
    x.data = dst;
    return;
  }
  if (opt.mmap) return;
  const kernels::TypeTraits& t = kernels::type_traits(x.type);
  const std::size_t values = std::size_t(x.rows) * x.cols;
  x.data = copier.copy(x.data, t.bytes_of(values));
  if (t.scales_apart) {
    x.scales = reinterpret_cast<const float*>(
        copier.copy(x.scales, values / x.group_size * sizeof(float)));
  }
}

// Drops what a process running `range` does not run, so nothing can read it by mistake.
void drop_unheld(Model& m, LayerRange range) {
  if (m.shared_classifier) m.classifier = m.token_embedding;
  if (range.begin != 0) m.token_embedding.data = nullptr;
  if (range.end != m.config.n_layers) {
    m.classifier.data = nullptr;
    m.rms_final = nullptr;
  }
  for (int l = 0; l < m.config.n_layers; l++) {
    if (l < range.begin || l >= range.end) m.layers[l] = LayerWeights{};
  }
}

void place_weights(Model& m, const Source& src, const LoadOptions& opt) {
  const LayerRange range = checked_range(m, opt);
  m.loaded = range;
  const Held h = held(m, range);
  const std::size_t total = arena_bytes(h, m.config.dim, opt);
  auto arena = std::make_shared<Arena>(total);
  {
    Copier copier(m.path, src, *arena);
    std::size_t placed = 0;
    for (Matrix* x : h.matrices) {
      if (opt.progress) opt.progress(placed, total);
      place_matrix(*x, opt, *arena, copier);
      placed += x->bytes();
      if (opt.progress) opt.progress(placed, total);
    }
    if (!opt.mmap) {
      for (const float** p : h.norms) {
        *p = reinterpret_cast<const float*>(copier.copy(*p, m.config.dim * sizeof(float)));
      }
    }
  }
  drop_unheld(m, range);
  if (opt.mmap) {
    m.storage = std::make_shared<std::pair<std::shared_ptr<const void>, std::shared_ptr<Arena>>>(
        src.keep_alive, arena);
  } else {
    m.storage = arena;  // the file's mapping goes with `src`
  }
}

}  // namespace

Model load_model(const std::string& path, const LoadOptions& options) {
  auto file = std::make_shared<MappedFile>(path);
  const auto bytes = file->bytes();
  Model m;
  std::shared_ptr<const void> keep_alive;
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0) {
    auto gguf = std::make_shared<GgufFile>(std::move(*file));
    m = parse_gguf_model(*gguf);
    keep_alive = gguf;
    place_weights(m, Source{keep_alive, gguf->file().bytes().data()}, options);
  } else {
    m = parse_llama2c_checkpoint(*file);
    keep_alive = file;
    place_weights(m, Source{keep_alive, file->bytes().data()}, options);
  }
  return m;
}

}  // namespace troupe
