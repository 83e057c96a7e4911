// `troupe synth`: GGUF models of real shapes with deterministic random weights, for speed and
// memory work without downloading anything.
//
// Every value is a function of (--seed, tensor name, row, column) alone: each row is a splitmix64
// stream seeded from the seed, a hash of the tensor's name and the row number, so tensors do not
// depend on their order or on the thread count, and --layers-keep leaves the kept layers' bytes
// unchanged. Matrices are uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)); norms are 1.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "commands.hpp"
#include "progress.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"
#include "troupe/model/llama_gguf_writer.hpp"
#include "troupe/model/model_shapes.hpp"
#include "troupe/model/weight_types.hpp"
#include "troupe/text/gguf_vocabulary.hpp"
#include "troupe/text/tokenizer.hpp"

namespace troupe::cli {

namespace {

struct SynthOptions {
  std::string shape;
  int dim = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0, seq_len = 0;
  int layers_keep = 0;
  std::string type = "f32";
  long long seed = 1;
  std::string tokenizer;
  std::string out;
  bool tied = false;
  int threads = 0;
  CLI::App* cmd = nullptr;
};

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// Row `row` of a tensor whose stream seed is `tensor_seed`: splitmix64 outputs, each giving two
// 24-bit uniforms in [0, 1), mapped to [-scale, scale).
void random_row(uint64_t tensor_seed, int row, float scale, float* out, int n) {
  uint64_t state = mix64(tensor_seed ^ mix64(static_cast<uint64_t>(row) + 1));
  constexpr float kUnit = 1.0f / 16777216.0f;  // 2^-24
  const float two_scale = 2.0f * scale;
  int j = 0;
  for (; j + 1 < n; j += 2) {
    state += kGolden;
    const uint64_t z = mix64(state);
    out[j] = static_cast<float>(static_cast<uint32_t>(z) >> 8) * kUnit * two_scale - scale;
    out[j + 1] = static_cast<float>(static_cast<uint32_t>(z >> 32) >> 8) * kUnit * two_scale - scale;
  }
  if (j < n) {
    state += kGolden;
    out[j] = static_cast<float>(static_cast<uint32_t>(mix64(state)) >> 8) * kUnit * two_scale - scale;
  }
}

void check_range(const char* flag, int v, int lo, int hi) {
  if (v < lo || v > hi) {
    throw InputError(std::string(flag) + ": " + std::to_string(v) + " is out of range (" +
                     std::to_string(lo) + " to " + std::to_string(hi) + ")");
  }
}

ModelConfig shape_config(const SynthOptions& opt, std::string& name, bool& tied) {
  static const char* const kCustom[] = {"--dim", "--hidden", "--layers", "--heads",
                                        "--kv-heads", "--vocab", "--seq-len"};
  std::string given, missing;
  for (const char* f : kCustom) {
    std::string& list = opt.cmd->count(f) ? given : missing;
    list += (list.empty() ? "" : ", ") + std::string(f);
  }
  ModelConfig c;
  if (!opt.shape.empty()) {
    if (!given.empty()) throw InputError("--shape " + opt.shape + " cannot be combined with " + given);
    const auto it = model_shapes().find(opt.shape);
    if (it == model_shapes().end()) {
      std::string known;
      for (const auto& [k, v] : model_shapes()) known += (known.empty() ? "" : ", ") + k;
      throw InputError("--shape: unknown shape '" + opt.shape + "' (shapes: " + known + ")");
    }
    const ModelShape& s = it->second;
    c.dim = s.dim;
    c.hidden_dim = s.hidden;
    c.n_layers = s.layers;
    c.n_heads = s.heads;
    c.n_kv_heads = s.kv_heads;
    c.vocab_size = s.vocab;
    c.seq_len = s.seq_len;
    c.rope_theta = s.rope_theta;
    name = opt.shape;
    tied = s.tied || opt.tied;
  } else {
    if (given.empty()) {
      throw InputError("synth needs --shape NAME or a custom shape (--dim, --hidden, --layers, "
                       "--heads, --kv-heads, --vocab, --seq-len)");
    }
    if (!missing.empty()) throw InputError("custom shape: missing " + missing);
    check_range("--dim", opt.dim, 1, 1 << 16);
    check_range("--hidden", opt.hidden, 1, 1 << 18);
    check_range("--layers", opt.layers, 1, 1 << 10);
    check_range("--heads", opt.heads, 1, 1 << 10);
    check_range("--kv-heads", opt.kv_heads, 1, 1 << 10);
    check_range("--vocab", opt.vocab, 3, 1 << 22);
    check_range("--seq-len", opt.seq_len, 1, 1 << 20);
    c.dim = opt.dim;
    c.hidden_dim = opt.hidden;
    c.n_layers = opt.layers;
    c.n_heads = opt.heads;
    c.n_kv_heads = opt.kv_heads;
    c.vocab_size = opt.vocab;
    c.seq_len = opt.seq_len;
    if (const std::string problem = c.shape_problem(); !problem.empty()) {
      throw InputError("custom shape (--dim, --heads, --kv-heads): " + problem);
    }
    name = "custom";
    tied = opt.tied;
  }
  if (opt.cmd->count("--layers-keep")) {
    if (opt.layers_keep < 1 || opt.layers_keep > c.n_layers) {
      throw InputError("--layers-keep: " + std::to_string(opt.layers_keep) +
                       " is out of range (1 to the shape's " + std::to_string(c.n_layers) + " layers)");
    }
    if (opt.layers_keep < c.n_layers) name += ", first " + std::to_string(opt.layers_keep) + " layers";
    c.n_layers = opt.layers_keep;
  }
  return c;
}

// The tokenizer.* keys: copied from a GGUF file, or a llama2.c tokenizer converted as `convert`
// does, or synth's byte-fallback vocabulary.
std::function<void(GgufWriter&)> tokenizer_keys(const std::string& path, int vocab_size) {
  if (path.empty()) {
    auto vocab = std::make_shared<Vocabulary>(synthetic_vocabulary(vocab_size));
    return [vocab](GgufWriter& w) { set_tokenizer_metadata(w, *vocab, "llama"); };
  }
  MappedFile mapped(path);
  if (mapped.size() >= 4 && std::memcmp(mapped.bytes().data(), "GGUF", 4) == 0) {
    const GgufFile file(std::move(mapped));
    const GgufArray* tokens = file.get_array("tokenizer.ggml.tokens");
    if (!tokens || tokens->element_type != GgufValueType::string) {
      throw InputError(path + ": no vocabulary (tokenizer.ggml.tokens is missing)");
    }
    if (tokens->strings.size() != static_cast<std::size_t>(vocab_size)) {
      throw InputError("--tokenizer " + path + " has " + std::to_string(tokens->strings.size()) +
                       " tokens but the shape's vocabulary is " + std::to_string(vocab_size) +
                       " (use a custom shape with --vocab " + std::to_string(tokens->strings.size()) + ")");
    }
    (void)Tokenizer::from_gguf(file);  // a vocabulary troupe cannot use is an error here
    auto keys = std::make_shared<std::vector<std::pair<std::string, GgufValue>>>();
    for (const auto& [k, v] : file.metadata()) {
      if (k.rfind("tokenizer.", 0) == 0) keys->emplace_back(k, v);
    }
    return [keys](GgufWriter& w) {
      for (const auto& [k, v] : *keys) w.set(k, v);
    };
  }
  const Tokenizer tok = Tokenizer::load_llama2c(path, vocab_size);
  auto vocab = std::make_shared<Vocabulary>(gguf_vocabulary_from_llama2c(tok.vocab()));
  return [vocab](GgufWriter& w) { set_tokenizer_metadata(w, *vocab, "llama"); };
}

int synth(const SynthOptions& opt) {
  const std::optional<GgmlType> type = parse_ggml_weight_type(opt.type);
  if (!type) {
    throw InputError("--type: '" + opt.type + "' is not one of " +
                     list_names(named_weight_types(), ", "));
  }
  if (opt.threads < 0) throw InputError("--threads: must be 0 (all cores) or more");
  if (opt.seed < 0) throw InputError("--seed: " + std::to_string(opt.seed) + " is negative");
  std::string name;
  bool tied = false;
  const ModelConfig c = shape_config(opt, name, tied);
  const LlamaGgufLayout layout = llama_gguf_layout(c, tied, *type);
  int matrices = 0;
  for (const LlamaTensor& t : layout.tensors) matrices += t.matrix;
  if (static_cast<int>(layout.widened.size()) == matrices) {
    throw InputError("--type " + opt.type + ": no matrix of this shape has rows of whole " +
                     std::to_string(ggml_block_size(*type)) + "-value blocks (dim " +
                     std::to_string(c.dim) + ", hidden " + std::to_string(c.hidden_dim) + ")");
  }
  LlamaGgufOptions options;
  options.tokenizer = tokenizer_keys(opt.tokenizer, c.vocab_size);
  check_output_path(opt.out);
  if (!layout.widened.empty()) {
    std::string names;
    for (const std::string& n : layout.widened) names += (names.empty() ? "" : ", ") + n;
    std::fprintf(stderr, "troupe: note: kept in f32 (rows not a multiple of %s's %d-value blocks): %s\n",
                 opt.type.c_str(), ggml_block_size(*type), names.c_str());
  }

  options.name = "synth " + name;
  options.type = *type;
  options.tied = tied;
  options.threads = opt.threads;
  Progress progress("synth " + name, layout.weight_bytes);
  options.progress = [&progress](uint64_t done, uint64_t total) {
    progress.set_total(total);
    progress.update(done);
  };
  const uint64_t seed = static_cast<uint64_t>(opt.seed);
  const LlamaRowSource source = [seed](const LlamaTensor& t, int row, float* out) {
    if (!t.matrix) {
      std::fill(out, out + t.cols, 1.0f);
      return;
    }
    const uint64_t tensor_seed = mix64(seed * kGolden ^ fnv1a(t.name));
    random_row(tensor_seed, row, 1.0f / std::sqrt(static_cast<float>(t.cols)), out, t.cols);
  };
  write_llama_gguf(opt.out, c, options, source);
  progress.finish();
  std::printf("wrote %s: GGUF v3, llama (%s), %d layers, %s, %s of weights, seed %llu\n",
              opt.out.c_str(), name.c_str(), c.n_layers, opt.type.c_str(),
              format_bytes(layout.weight_bytes).c_str(), static_cast<unsigned long long>(seed));
  return 0;
}

}  // namespace

Action add_synth_command(CLI::App& app) {
  auto opt = std::make_shared<SynthOptions>();
  CLI::App* cmd = app.add_subcommand(
      "synth", "Write a GGUF model of a real shape with deterministic random weights");
  opt->cmd = cmd;
  std::string shapes_list;
  for (const auto& [k, v] : model_shapes()) shapes_list += (shapes_list.empty() ? "" : "|") + k;
  cmd->add_option("--shape", opt->shape, "A known shape: " + shapes_list);
  cmd->add_option("--dim", opt->dim, "Custom shape: width of the residual stream");
  cmd->add_option("--hidden", opt->hidden, "Custom shape: width of the feed-forward layer");
  cmd->add_option("--layers", opt->layers, "Custom shape: layers");
  cmd->add_option("--heads", opt->heads, "Custom shape: attention heads");
  cmd->add_option("--kv-heads", opt->kv_heads, "Custom shape: key/value heads");
  cmd->add_option("--vocab", opt->vocab, "Custom shape: vocabulary size");
  cmd->add_option("--seq-len", opt->seq_len, "Custom shape: context length");
  cmd->add_option("--layers-keep", opt->layers_keep, "Write only the first N layers");
  cmd->add_option("--type", opt->type, type_flag_help());
  cmd->add_option("--seed", opt->seed, "Seed of the weights (default 1)");
  cmd->add_option("--tokenizer", opt->tokenizer,
                  "Vocabulary to embed: a llama2.c tokenizer or a GGUF file (default: byte fallback)");
  cmd->add_flag("--tied", opt->tied, "Share the classifier with the token embedding");
  cmd->add_option("--threads", opt->threads, "Threads (default: all cores)");
  cmd->add_option("--out", opt->out, "The GGUF file to write")->required();
  return [opt] { return synth(*opt); };
}

}  // namespace troupe::cli
