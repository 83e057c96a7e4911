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

namespace k = troupe::kernels;

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

const char* weight_type_name(WeightType type) {
  switch (type) {
    case WeightType::f32: return "f32";
    case WeightType::f16: return "f16";
    case WeightType::q8_0: return "q8_0";
    case WeightType::q4_0: return "q4_0";
    case WeightType::q8_groups: return "q8 (llama2.c groups)";
  }
  return "?";
}

WeightType parse_weight_type(const std::string& name, const std::string& flag) {
  if (name == "f32") return WeightType::f32;
  if (name == "f16") return WeightType::f16;
  if (name == "q8_0") return WeightType::q8_0;
  if (name == "q4_0") return WeightType::q4_0;
  throw InputError(flag + ": unknown weight type '" + name + "' (f32, f16, q8_0 or q4_0)");
}

namespace {
std::size_t type_bytes(WeightType type, std::size_t n, int group_size) {
  switch (type) {
    case WeightType::f32: return n * 4;
    case WeightType::f16: return n * 2;
    case WeightType::q8_0: return n / k::kBlock * sizeof(k::BlockQ8_0);
    case WeightType::q4_0: return n / k::kBlock * sizeof(k::BlockQ4_0);
    case WeightType::q8_groups: return n + n / group_size * sizeof(float);
  }
  return 0;
}
}  // namespace

std::size_t Matrix::bytes() const {
  return type_bytes(type, std::size_t(rows) * std::size_t(cols), group_size);
}

void Matrix::row(int r, float* out) const {
  const std::size_t off = std::size_t(r) * std::size_t(cols);
  switch (type) {
    case WeightType::f32:
      std::memcpy(out, static_cast<const float*>(data) + off, std::size_t(cols) * sizeof(float));
      break;
    case WeightType::f16:
      k::dequantize_row_f16(out, static_cast<const uint16_t*>(data) + off, cols);
      break;
    case WeightType::q8_0:
      k::dequantize_row_q8_0(out, static_cast<const k::BlockQ8_0*>(data) + off / k::kBlock, cols);
      break;
    case WeightType::q4_0:
      k::dequantize_row_q4_0(out, static_cast<const k::BlockQ4_0*>(data) + off / k::kBlock, cols);
      break;
    case WeightType::q8_groups: {
      // runq.c's dequantize: value = q * scale of its group.
      const auto* q = static_cast<const int8_t*>(data);
      for (int j = 0; j < cols; j++) out[j] = q[off + j] * scales[(off + j) / group_size];
      break;
    }
  }
}

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

// One piece of weights to place: where the view points now, and how to repoint it.
struct Placement {
  const void* source;
  std::size_t bytes;
  std::function<void(const void*)> repoint;
};

struct Source {
  std::shared_ptr<const void> keep_alive;  // the mapping
  const std::byte* base;
};

// A matrix quantized on load: the rows re-encoded into blocks.
bool quantizable(const Matrix& m, const LoadOptions& opt) {
  return opt.quantize && m.cols % k::kBlock == 0 &&
         (m.type == WeightType::f32 || m.type == WeightType::f16) && m.type != *opt.quantize;
}

void quantize_matrix(const Matrix& src, WeightType to, std::byte* dst) {
  std::vector<float> row(src.cols);
  const std::size_t row_bytes = type_bytes(to, src.cols, 0);
  for (int r = 0; r < src.rows; r++) {
    src.row(r, row.data());
    std::byte* out = dst + std::size_t(r) * row_bytes;
    if (to == WeightType::q8_0) {
      k::quantize_row_q8_0(reinterpret_cast<k::BlockQ8_0*>(out), row.data(), src.cols);
    } else if (to == WeightType::q4_0) {
      k::quantize_row_q4_0(reinterpret_cast<k::BlockQ4_0*>(out), row.data(), src.cols);
    } else {
      auto* h = reinterpret_cast<uint16_t*>(out);
      for (int j = 0; j < src.cols; j++) h[j] = k::fp32_to_fp16(row[j]);
    }
  }
}

std::size_t rounded(std::size_t bytes) { return (bytes + 63) / 64 * 64; }

void place_weights(Model& m, const Source& src, const LoadOptions& opt) {
  const int n = m.config.n_layers;
  const LayerRange range = opt.layers.value_or(LayerRange{0, n});
  if (range.begin < 0 || range.end > n || range.begin >= range.end) {
    throw InputError(m.path + ": layers " + std::to_string(range.begin) + ":" +
                     std::to_string(range.end) + " are not within the model's 0:" +
                     std::to_string(n));
  }
  if (opt.quantize && *opt.quantize != WeightType::q8_0 && *opt.quantize != WeightType::q4_0) {
    throw InputError("--quantize: only q8_0 and q4_0 are supported");
  }
  m.loaded = range;
  const bool first = range.begin == 0, last = range.end == n;

  // What this process runs: its layers, the embedding for the first stage, the final norm and
  // classifier for the last (a shared classifier is the embedding table, placed once).
  std::vector<Matrix*> matrices;
  std::vector<const float**> norms;
  if (first || (last && m.shared_classifier)) matrices.push_back(&m.token_embedding);
  if (last && !m.shared_classifier) matrices.push_back(&m.classifier);
  if (last) norms.push_back(&m.rms_final);
  for (int l = range.begin; l < range.end; l++) {
    LayerWeights& w = m.layers[l];
    for (Matrix* x : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w1, &w.w2, &w.w3}) matrices.push_back(x);
    norms.push_back(&w.rms_att);
    norms.push_back(&w.rms_ffn);
  }

  std::size_t total = 0;
  for (Matrix* x : matrices) {
    if (quantizable(*x, opt)) {
      total += rounded(type_bytes(*opt.quantize, std::size_t(x->rows) * x->cols, 0));
    } else if (!opt.mmap) {
      total += rounded(x->bytes()) + 64;
    }
  }
  if (!opt.mmap) total += norms.size() * rounded(m.config.dim * sizeof(float));
  auto arena = std::make_shared<Arena>(total);

  // Copies with pread rather than through the mapping: the file's pages are not faulted into
  // this process one by one, and never count in its RSS.
  const int fd = ::open(m.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(m.path + ": cannot open: " + std::strerror(errno));
  auto copy = [&](const void* from, std::size_t bytes) -> std::byte* {
    std::byte* to = arena->take(bytes);
    const auto offset = static_cast<off_t>(static_cast<const std::byte*>(from) - src.base);
    for (std::size_t done = 0; done < bytes;) {
      const ssize_t got = ::pread(fd, to + done, bytes - done, offset + static_cast<off_t>(done));
      if (got <= 0) {
        ::close(fd);
        throw InputError(m.path + ": read failed at offset " + std::to_string(offset + done));
      }
      done += static_cast<std::size_t>(got);
    }
    return to;
  };
  std::size_t placed = 0;
  auto report = [&](std::size_t bytes) {
    placed += bytes;
    if (opt.progress) opt.progress(placed, total);
  };
  for (Matrix* x : matrices) {
    report(0);
    if (quantizable(*x, opt)) {
      std::byte* dst = arena->take(type_bytes(*opt.quantize, std::size_t(x->rows) * x->cols, 0));
      quantize_matrix(*x, *opt.quantize, dst);
      x->type = *opt.quantize;
      x->data = dst;
    } else if (!opt.mmap && x->type == WeightType::q8_groups) {
      const std::size_t values = std::size_t(x->rows) * x->cols;
      x->data = copy(x->data, values);
      x->scales = reinterpret_cast<const float*>(copy(x->scales, values / x->group_size * 4));
    } else if (!opt.mmap) {
      x->data = copy(x->data, x->bytes());
    }
    report(x->bytes());
  }
  if (!opt.mmap) {
    for (const float** p : norms) *p = reinterpret_cast<const float*>(copy(*p, m.config.dim * 4));
  }
  ::close(fd);

  // Drop what this process does not run, so nothing can read it by mistake.
  if (m.shared_classifier) m.classifier = m.token_embedding;
  if (!first) m.token_embedding.data = nullptr;
  if (!last) {
    m.classifier.data = nullptr;
    m.rms_final = nullptr;
  }
  for (int l = 0; l < n; l++) {
    if (l < range.begin || l >= range.end) m.layers[l] = LayerWeights{};
  }
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
