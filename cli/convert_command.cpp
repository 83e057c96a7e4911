// `troupe convert CHECKPOINT --tokenizer TOK --out FILE.gguf [--type f32|f16|q8_0|q4_0]`: a
// llama2.c checkpoint (any version) and its llama2.c tokenizer become an ordinary GGUF v3 file of
// the llama architecture, as llama.cpp's own converter writes one, with the matrices in the
// requested type (norms stay f32). Tensors stream out row by row; nothing is held whole.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "commands.hpp"
#include "model_paths.hpp"
#include "progress.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/llama_gguf_writer.hpp"
#include "troupe/model/model.hpp"
#include "troupe/model/weight_types.hpp"
#include "troupe/text/gguf_vocabulary.hpp"
#include "troupe/text/tokenizer.hpp"

namespace troupe::cli {

namespace {

struct ConvertOptions {
  std::string checkpoint;
  std::string tokenizer;
  std::string out;
  std::string type = "f32";
};

// One stderr line naming the matrices kept in f32.
void note_widened(const LlamaGgufLayout& layout, const std::string& name, GgmlType type) {
  if (layout.widened.empty()) return;
  std::string names;
  for (const std::string& n : layout.widened) names += (names.empty() ? "" : ", ") + n;
  std::fprintf(stderr,
               "troupe: note: %zu matri%s kept in f32: rows not a multiple of %s's %d-value blocks: %s\n",
               layout.widened.size(), layout.widened.size() == 1 ? "x" : "ces", name.c_str(),
               ggml_block_size(type), names.c_str());
}

int convert(const ConvertOptions& opt) {
  const std::optional<GgmlType> type = parse_ggml_weight_type(opt.type);
  if (!type) {
    throw InputError("--type: '" + opt.type + "' is not one of " +
                     list_names(named_weight_types(), ", "));
  }
  const std::string path = resolve_model(opt.checkpoint);
  MappedFile mapped(path);
  if (mapped.size() >= 4 && std::memcmp(mapped.bytes().data(), "GGUF", 4) == 0) {
    throw InputError(path + ": already a GGUF file (convert reads llama2.c checkpoints)");
  }
  // Views into the mapping: rows are read from the file as they are written out.
  const Model model = parse_llama2c_checkpoint(mapped);
  const ModelConfig& c = model.config;
  const Tokenizer tokenizer = Tokenizer::load_llama2c(opt.tokenizer, c.vocab_size);
  const Vocabulary vocab = gguf_vocabulary_from_llama2c(tokenizer.vocab());

  const LlamaGgufLayout layout = llama_gguf_layout(c, model.shared_classifier, *type);
  int matrices = 0;
  for (const LlamaTensor& t : layout.tensors) matrices += t.matrix;
  if (static_cast<int>(layout.widened.size()) == matrices) {
    throw InputError("--type " + opt.type + ": no matrix of " + path + " has rows of whole " +
                     std::to_string(ggml_block_size(*type)) + "-value blocks (dim " +
                     std::to_string(c.dim) + ", hidden " + std::to_string(c.hidden_dim) + ")");
  }
  check_output_path(opt.out);
  note_widened(layout, opt.type, *type);

  LlamaGgufOptions options;
  options.name = std::filesystem::path(path).stem().string();
  options.type = *type;
  options.tied = model.shared_classifier;
  options.tokenizer = [&vocab](GgufWriter& w) { set_tokenizer_metadata(w, vocab, "llama"); };
  Progress progress("converting " + std::filesystem::path(path).filename().string(),
                    layout.weight_bytes);
  options.progress = [&progress](uint64_t done, uint64_t total) {
    progress.set_total(total);
    progress.update(done);
  };
  const std::size_t dim_bytes = std::size_t(c.dim) * sizeof(float);
  const LlamaRowSource source = [&model, dim_bytes](const LlamaTensor& t, int row, float* out) {
    using K = LlamaTensorKind;
    const LayerWeights* l = t.layer >= 0 ? &model.layers[t.layer] : nullptr;
    switch (t.kind) {
      case K::token_embedding: model.token_embedding.row(row, out); return;
      case K::output: model.classifier.row(row, out); return;
      case K::output_norm: std::memcpy(out, model.rms_final, dim_bytes); return;
      case K::attn_norm: std::memcpy(out, l->rms_att, dim_bytes); return;
      case K::ffn_norm: std::memcpy(out, l->rms_ffn, dim_bytes); return;
      case K::attn_q: l->wq.row(row, out); return;
      case K::attn_k: l->wk.row(row, out); return;
      case K::attn_v: l->wv.row(row, out); return;
      case K::attn_output: l->wo.row(row, out); return;
      case K::ffn_gate: l->w1.row(row, out); return;
      case K::ffn_down: l->w2.row(row, out); return;
      case K::ffn_up: l->w3.row(row, out); return;
    }
  };
  write_llama_gguf(opt.out, c, options, source);
  progress.finish();
  std::printf("wrote %s: GGUF v3, llama, %d layers, %s, %s of weights\n", opt.out.c_str(),
              c.n_layers, opt.type.c_str(), format_bytes(layout.weight_bytes).c_str());
  return 0;
}

}  // namespace

Action add_convert_command(CLI::App& app) {
  auto opt = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a llama2.c checkpoint and its tokenizer into a GGUF file");
  cmd->add_option("checkpoint", opt->checkpoint, "llama2.c checkpoint (any version)")->required();
  cmd->add_option("--tokenizer", opt->tokenizer, "Its llama2.c tokenizer file")->required();
  cmd->add_option("--out", opt->out, "The GGUF file to write")->required();
  cmd->add_option("--type", opt->type, type_flag_help());
  return [opt] { return convert(*opt); };
}

}  // namespace troupe::cli
