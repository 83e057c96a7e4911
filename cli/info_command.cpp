// `troupe info FILE`: what a user needs to know about a model file (GGUF or llama2.c checkpoint):
// format, architecture, shape, RoPE base, RMS epsilon, tensor types, weight bytes, vocabulary and
// chat template. It describes rather than judges: tensor types troupe cannot compute with are
// listed, vocabulary-only GGUF files are described as such; only unreadable files are errors.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "commands.hpp"
#include "model_paths.hpp"
#include "progress.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"
#include "troupe/model/model.hpp"
#include "troupe/text/tokenizer.hpp"

namespace troupe::cli {

namespace {

void line(const char* label, const std::string& text) {
  std::printf("%-14s %s\n", label, text.c_str());
}

std::string quote_text(const std::string& s) { return describe(GgufValue{GgufValueType::string, s}); }

std::string fmt_float(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string token_text(const std::vector<std::string>& pieces, int id) {
  if (id < 0) return "none";
  std::string out = std::to_string(id);
  if (static_cast<std::size_t>(id) < pieces.size()) out += " " + quote_text(pieces[id]);
  return out;
}

std::string shape_text(int64_t dim, int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads,
                       int64_t head_size, int64_t vocab, int64_t context) {
  auto v = [](int64_t x) { return x < 0 ? std::string("?") : std::to_string(x); };
  return "dim " + v(dim) + ", hidden " + v(hidden) + ", layers " + v(layers) + ", heads " + v(heads) +
         ", kv heads " + v(kv_heads) + ", head size " + v(head_size) + ", vocab " + v(vocab) +
         ", context " + v(context);
}

std::string chat_template_text(const std::string& tmpl) {
  if (tmpl.empty()) return "none";
  const std::size_t nl = tmpl.find('\n');
  std::string first = tmpl.substr(0, nl);
  if (first.size() > 72) first = first.substr(0, 72) + "...";
  std::size_t lines = 1;
  for (char c : tmpl) lines += c == '\n';
  return quote_text(first) + " (" + std::to_string(tmpl.size()) + " bytes, " + std::to_string(lines) +
         (lines == 1 ? " line)" : " lines)");
}

// llama.cpp's llama_ftype names (general.file_type).
std::string file_type_text(int64_t ft) {
  static const std::map<int64_t, const char*> kNames = {
      {0, "all f32"},       {1, "mostly f16"},     {2, "mostly q4_0"},    {3, "mostly q4_1"},
      {7, "mostly q8_0"},   {8, "mostly q5_0"},    {9, "mostly q5_1"},    {10, "mostly q2_K"},
      {11, "mostly q3_K_S"}, {12, "mostly q3_K_M"}, {13, "mostly q3_K_L"}, {14, "mostly q4_K_S"},
      {15, "mostly q4_K_M"}, {16, "mostly q5_K_S"}, {17, "mostly q5_K_M"}, {18, "mostly q6_K"},
      {32, "mostly bf16"},
  };
  const auto it = kNames.find(ft);
  return std::to_string(ft) + (it == kNames.end() ? "" : std::string(" (") + it->second + ")");
}

bool is_gguf(const MappedFile& f) {
  return f.size() >= 4 && std::memcmp(f.bytes().data(), "GGUF", 4) == 0;
}

// The shape from <arch>.* keys, with what the tensors or vocabulary say where keys are missing;
// the RoPE base and RMS epsilon.
void describe_shape(const GgufFile& file, const std::string& arch, const std::vector<std::string>& pieces) {
  auto key = [&](const char* k) { return arch + "." + k; };
  auto int_or = [&](const std::string& k, int64_t fallback) { return file.get_int(k).value_or(fallback); };
  if (arch.empty() || !file.find(key("embedding_length"))) {
    line("shape", arch.empty() ? "not given" : "not given (no " + key("*") + " hyper-parameters)");
    return;
  }
  const int64_t dim = int_or(key("embedding_length"), -1);
  const int64_t heads = int_or(key("attention.head_count"), -1);
  int64_t vocab = int_or(key("vocab_size"), -1);
  if (vocab < 0 && !pieces.empty()) vocab = static_cast<int64_t>(pieces.size());
  if (vocab < 0) {
    if (const GgufTensorInfo* t = file.find_tensor("token_embd.weight"); t && t->dims.size() == 2) {
      vocab = static_cast<int64_t>(t->dims[1]);
    }
  }
  const int64_t head_size =
      int_or(key("attention.key_length"), dim > 0 && heads > 0 ? dim / heads : -1);
  line("shape", shape_text(dim, int_or(key("feed_forward_length"), -1), int_or(key("block_count"), -1),
                           heads, int_or(key("attention.head_count_kv"), heads), head_size, vocab,
                           int_or(key("context_length"), -1)));
  const std::optional<double> base = file.get_float(key("rope.freq_base"));
  line("rope base", base ? fmt_float(*base)
                        : arch == "llama" ? "not given (llama.cpp's default: 10000)" : "not given");
  const std::optional<double> eps = file.get_float(key("attention.layer_norm_rms_epsilon"));
  line("rms eps", eps ? fmt_float(*eps) : "not given");
}

// Tensors: counts per type (those troupe cannot compute with named), bytes, the classifier.
void describe_tensors(const GgufFile& file) {
  if (file.tensors().empty()) {
    line("tensors", "none (a vocabulary-only file: no weights)");
    return;
  }
  std::map<std::string, int> per_type;
  std::set<std::string> unsupported;
  uint64_t total = 0, in_layers = 0;
  std::set<std::string> layer_ids;
  for (const GgufTensorInfo& t : file.tensors()) {
    const std::string type = ggml_type_name(t.type);
    per_type[type]++;
    if (!ggml_type_supported(t.type)) unsupported.insert(type);
    total += t.bytes;
    if (t.name.rfind("blk.", 0) == 0) {
      in_layers += t.bytes;
      layer_ids.insert(t.name.substr(4, t.name.find('.', 4) - 4));
    }
  }
  std::string types = std::to_string(file.tensors().size()) + ":";
  bool first = true;
  for (const auto& [type, n] : per_type) {
    types += (first ? " " : ", ") + type + " " + std::to_string(n);
    first = false;
  }
  if (!unsupported.empty()) {
    std::string names;
    for (const std::string& u : unsupported) names += (names.empty() ? "" : ", ") + u;
    types += " (troupe cannot compute with " + names + ")";
  }
  line("tensors", types);
  std::string weights = format_bytes(total) + " in all";
  if (!layer_ids.empty()) {
    weights += ", " + format_bytes(in_layers / layer_ids.size()) + " per layer (" +
               std::to_string(layer_ids.size()) + " layers)";
  }
  line("weights", weights);
  if (file.find_tensor("token_embd.weight")) {
    line("classifier", file.find_tensor("output.weight") ? "output.weight (separate)"
                                                         : "tied to token_embd.weight");
  }
}

// The vocabulary, read the way troupe tokenizes with it where it can.
void describe_vocabulary(const GgufFile& file, const std::vector<std::string>& pieces) {
  const std::optional<std::string> model = file.get_string("tokenizer.ggml.model");
  if (!model && pieces.empty()) {
    line("vocabulary", "none in the file");
    return;
  }
  std::string kind = model ? *model : "?";
  if (kind == "llama") kind += " (SentencePiece)";
  if (kind == "gpt2") kind += " (byte-level BPE)";
  if (auto pre = file.get_string("tokenizer.ggml.pre")) kind += ", pre-tokenizer " + *pre;
  std::string text = std::to_string(pieces.size()) + " tokens, " + kind;
  try {
    const Tokenizer tok = Tokenizer::from_gguf(file);
    const SpecialTokens& s = tok.special();
    text += "; bos " + token_text(pieces, s.bos) + ", eos " + token_text(pieces, s.eos) + ", eot " +
            token_text(pieces, s.eot) + (s.add_bos ? "; adds bos" : "; adds no bos");
  } catch (const InputError& e) {
    auto id = [&](const char* k) {
      const std::optional<int64_t> v = file.get_int(k);
      return v && *v >= 0 && *v < int64_t(pieces.size()) ? static_cast<int>(*v) : -1;
    };
    text += "; bos " + token_text(pieces, id("tokenizer.ggml.bos_token_id")) + ", eos " +
            token_text(pieces, id("tokenizer.ggml.eos_token_id")) + ", eot " +
            token_text(pieces, id("tokenizer.ggml.eot_token_id"));
    std::string why = e.what();
    if (why.rfind(file.path() + ": ", 0) == 0) why = why.substr(file.path().size() + 2);
    text += " (troupe cannot tokenize with it: " + why + ")";
  }
  line("vocabulary", text);
}

int info_gguf(MappedFile mapped) {
  const uint64_t file_size = mapped.size();
  const GgufFile file(std::move(mapped));
  const std::string arch = file.get_string("general.architecture").value_or("");
  line("file", file.path() + " (" + format_bytes(file_size) + ")");
  line("format", "GGUF v" + std::to_string(file.version()) + ", " +
                     std::to_string(file.metadata().size()) + " metadata keys, " +
                     std::to_string(file.tensors().size()) + " tensors");
  if (auto name = file.get_string("general.name")) line("name", quote_text(*name));
  line("architecture", arch.empty() ? "not given (no general.architecture)" : arch);
  const GgufArray* tokens = file.get_array("tokenizer.ggml.tokens");
  const std::vector<std::string> no_pieces;
  const std::vector<std::string>& pieces =
      tokens && tokens->element_type == GgufValueType::string ? tokens->strings : no_pieces;
  describe_shape(file, arch, pieces);
  if (auto ft = file.get_int("general.file_type")) line("file type", file_type_text(*ft));
  describe_tensors(file);
  describe_vocabulary(file, pieces);
  line("chat template", chat_template_text(file.get_string("tokenizer.chat_template").value_or("")));
  return 0;
}

int info_llama2c(const MappedFile& mapped) {
  const uint64_t file_size = mapped.size();
  const Model m = parse_llama2c_checkpoint(mapped);
  const ModelConfig& c = m.config;
  line("file", m.path + " (" + format_bytes(file_size) + ")");
  line("format", m.format);
  line("architecture", "llama");
  line("shape", shape_text(c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_size(),
                           c.vocab_size, c.seq_len));
  line("rope base", fmt_float(c.rope_theta));
  line("rms eps", fmt_float(c.rms_eps));

  // Tensors: the matrices by type, the norms f32.
  std::map<std::string, int> per_type;
  auto count = [&](const Matrix& x) { per_type[weight_type_name(x.type)]++; };
  count(m.token_embedding);
  for (const LayerWeights& l : m.layers) {
    for (const Matrix* x : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w1, &l.w2, &l.w3}) count(*x);
  }
  if (!m.shared_classifier) count(m.classifier);
  const int norms = 2 * c.n_layers + 1;
  per_type["f32"] += norms;
  int n = 0;
  std::string types;
  for (const auto& [type, k] : per_type) {
    types += (types.empty() ? " " : ", ") + type + " " + std::to_string(k);
    n += k;
  }
  line("tensors", std::to_string(n) + ":" + types);
  const uint64_t norm_bytes = uint64_t(c.dim) * sizeof(float);
  uint64_t in_layers = 0;
  for (const LayerWeights& l : m.layers) in_layers += l.bytes() + 2 * norm_bytes;
  const uint64_t total = m.token_embedding.bytes() + in_layers + norm_bytes +
                         (m.shared_classifier ? 0 : m.classifier.bytes());
  line("weights", format_bytes(total) + " in all, " +
                      format_bytes(c.n_layers ? in_layers / c.n_layers : 0) + " per layer (" +
                      std::to_string(c.n_layers) + " layers)");
  line("classifier", m.shared_classifier ? "tied to the token embedding" : "separate");

  // llama2.c keeps the vocabulary in a separate file; describe the one `troupe run` would use.
  std::string vocab = "not in the file (llama2.c tokenizers are separate files)";
  try {
    const std::string tok_path = find_tokenizer(m.path, c.vocab_size);
    const Tokenizer tok = Tokenizer::load_llama2c(tok_path, c.vocab_size);
    const auto& pieces = tok.vocab().pieces;
    vocab += "; beside it: " + tok_path + ", " + std::to_string(tok.vocab_size()) +
             " tokens, llama2.c; bos " + token_text(pieces, Tokenizer::kBos) + ", eos " +
             token_text(pieces, Tokenizer::kEos) + ", eot none";
  } catch (const InputError&) {
    vocab += "; none found beside it (give one with -z)";
  }
  line("vocabulary", vocab);
  line("chat template", "none (troupe run -m chat uses Llama 2's [INST] turns, as llama2.c)");
  return 0;
}

int info(const std::string& name) {
  const std::string path = resolve_model(name);
  MappedFile file(path);
  return is_gguf(file) ? info_gguf(std::move(file)) : info_llama2c(file);
}

}  // namespace

Action add_info_command(CLI::App& app) {
  auto file = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a model file (GGUF or llama2.c checkpoint)");
  cmd->add_option("file", *file, "Model file (GGUF or llama2.c checkpoint) or name")->required();
  return [file] { return info(*file); };
}

}  // namespace troupe::cli
