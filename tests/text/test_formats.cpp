// Model-file commands: `troupe convert` (llama2.c -> GGUF, checked against the checkpoint and
// against what llama.cpp's own converter wrote), `troupe synth` (deterministic random weights),
// `troupe info`, and their bad-input errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/checkpoint_writer.hpp"
#include "support/process.hpp"
#include "troupe/kernels/kernels.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"
#include "troupe/model/llama_gguf.hpp"
#include "troupe/model/llama_gguf_writer.hpp"
#include "troupe/model/model.hpp"
#include "troupe/model/weight_types.hpp"
#include "troupe/text/tokenizer.hpp"

using namespace troupe;
using troupe::test::run_troupe;
using troupe::test::shared_dir;
using troupe::test::TempDir;
using troupe::test::read_all;

namespace {

const std::string kStories = shared_dir() + "/models/stories260K";
const std::string kBin = kStories + "/stories260K.bin";
const std::string kTok = kStories + "/tok512.bin";
const std::string kLlamaCpp = kStories + "/stories260K-llamacpp-f32.gguf";

std::string describe_args(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args) s += " " + a;
  return s;
}

// Runs troupe and requires success.
troupe::test::ProcessResult ok(const std::vector<std::string>& args) {
  auto r = run_troupe(args);
  INFO("troupe" << describe_args(args) << "\nstderr: " << r.err);
  REQUIRE(r.signal == 0);
  REQUIRE(r.exit_code == 0);
  return r;
}

void expect_bad_input(const std::vector<std::string>& args, const std::string& names) {
  const auto r = run_troupe(args);
  INFO("troupe" << describe_args(args) << "\nstderr: " << r.err);
  CHECK(r.signal == 0);
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find(names) != std::string::npos);
}

// A tensor's values as floats, whatever its supported type.
std::vector<float> floats(const GgufTensorInfo& t) {
  const uint64_t n = t.elements();
  std::vector<float> out(n);
  const int cols = static_cast<int>(t.dims[0]);
  const uint64_t rows = n / cols;
  const WeightType type = weight_type_of_ggml(t.type).value();
  for (uint64_t r = 0; r < rows; r++) {
    kernels::dequantize_row(type, out.data() + r * cols, kernels::rows_from(type, t.data, int(r), cols),
                            cols);
  }
  return out;
}

// The checkpoint's tensor behind a GGUF tensor name, as floats.
std::vector<float> checkpoint_floats(const Model& m, const std::string& name) {
  const int dim = m.config.dim;
  auto matrix = [](const Matrix& x) {
    std::vector<float> out(std::size_t(x.rows) * x.cols);
    for (int r = 0; r < x.rows; r++) x.row(r, out.data() + std::size_t(r) * x.cols);
    return out;
  };
  auto vec = [dim](const float* p) { return std::vector<float>(p, p + dim); };
  namespace g = llama_gguf;
  if (name == g::kTokenEmbedding) return matrix(m.token_embedding);
  if (name == g::kOutput) return matrix(m.classifier);
  if (name == g::kOutputNorm) return vec(m.rms_final);
  for (int l = 0; l < m.config.n_layers; l++) {
    const LayerWeights& w = m.layers[l];
    if (name == g::layer(l, g::kAttnQ)) return matrix(w.wq);
    if (name == g::layer(l, g::kAttnK)) return matrix(w.wk);
    if (name == g::layer(l, g::kAttnV)) return matrix(w.wv);
    if (name == g::layer(l, g::kAttnOutput)) return matrix(w.wo);
    if (name == g::layer(l, g::kFfnGate)) return matrix(w.w1);
    if (name == g::layer(l, g::kFfnDown)) return matrix(w.w2);
    if (name == g::layer(l, g::kFfnUp)) return matrix(w.w3);
    if (name == g::layer(l, g::kAttnNorm)) return vec(w.rms_att);
    if (name == g::layer(l, g::kFfnNorm)) return vec(w.rms_ffn);
  }
  FAIL("no checkpoint tensor for " << name);
  return {};
}

std::vector<float> numbers(const GgufArray& a) {
  std::vector<float> out;
  for (const GgufValue& v : a.items) {
    if (auto d = std::get_if<double>(&v.value)) out.push_back(static_cast<float>(*d));
    if (auto i = std::get_if<int64_t>(&v.value)) out.push_back(static_cast<float>(*i));
    if (auto u = std::get_if<uint64_t>(&v.value)) out.push_back(static_cast<float>(*u));
  }
  return out;
}

// Converts stories260K once per type (the tests share the files).
const std::string& converted(const std::string& type) {
  static TempDir dir;
  static std::map<std::string, std::string> done;
  if (auto it = done.find(type); it != done.end()) return it->second;
  const std::string out = dir / ("stories260K-" + type + ".gguf");
  ok({"convert", kBin, "--tokenizer", kTok, "--out", out, "--type", type});
  return done[type] = out;
}

const std::vector<std::string> kSmall = {"synth", "--dim", "64", "--hidden", "96", "--layers", "3",
                                         "--heads", "4", "--kv-heads", "2", "--vocab", "300",
                                         "--seq-len", "32"};
std::vector<std::string> small_synth(const std::string& out, std::vector<std::string> extra = {}) {
  auto args = kSmall;
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back("--out");
  args.push_back(out);
  return args;
}

}  // namespace

TEST_CASE("convert writes every tensor of the checkpoint exactly (f32)", "[formats]") {
  const GgufFile file = GgufFile::open(converted("f32"));
  const MappedFile mapped(kBin);
  const Model model = parse_llama2c_checkpoint(mapped);
  const ModelConfig& c = model.config;

  CHECK(file.version() == 3);
  CHECK(file.get_string("general.architecture") == "llama");
  CHECK(file.get_string("general.name") == "stories260K");
  CHECK(file.get_int("general.file_type") == 0);
  CHECK(!file.find("general.quantization_version"));
  CHECK(file.get_int("llama.context_length") == c.seq_len);
  CHECK(file.get_int("llama.embedding_length") == c.dim);
  CHECK(file.get_int("llama.feed_forward_length") == c.hidden_dim);
  CHECK(file.get_int("llama.block_count") == c.n_layers);
  CHECK(file.get_int("llama.attention.head_count") == c.n_heads);
  CHECK(file.get_int("llama.attention.head_count_kv") == c.n_kv_heads);
  CHECK(file.get_int("llama.rope.dimension_count") == c.head_size());
  CHECK(file.get_float("llama.rope.freq_base") == Approx(10000.0));
  CHECK(static_cast<float>(*file.get_float("llama.attention.layer_norm_rms_epsilon")) == 1e-5f);
  CHECK(file.get_int("llama.vocab_size") == c.vocab_size);

  // The shared classifier is left out (llama.cpp reads that as tied); everything else is there.
  REQUIRE(model.shared_classifier);
  CHECK(!file.find_tensor(llama_gguf::kOutput));
  CHECK(file.tensors().size() == 2 + 9 * std::size_t(c.n_layers));
  for (const GgufTensorInfo& t : file.tensors()) {
    INFO(t.name);
    CHECK(t.type == static_cast<uint32_t>(GgmlType::f32));
    const std::vector<float> want = checkpoint_floats(model, t.name);
    REQUIRE(t.elements() == want.size());
    CHECK(std::memcmp(t.data, want.data(), want.size() * 4) == 0);
  }
  // Shapes as llama.cpp's converter wrote them, and the same bytes.
  const GgufFile ref = GgufFile::open(kLlamaCpp);
  for (const GgufTensorInfo& t : file.tensors()) {
    INFO(t.name);
    const GgufTensorInfo* r = ref.find_tensor(t.name);
    REQUIRE(r);
    CHECK(r->dims == t.dims);
    CHECK(std::memcmp(r->data, t.data, t.bytes) == 0);
  }
}

TEST_CASE("convert writes the vocabulary as llama.cpp's converter does", "[formats]") {
  const GgufFile file = GgufFile::open(converted("f32"));
  const GgufFile ref = GgufFile::open(kLlamaCpp);
  CHECK(file.get_string("tokenizer.ggml.model") == ref.get_string("tokenizer.ggml.model"));
  const GgufArray* tokens = file.get_array("tokenizer.ggml.tokens");
  REQUIRE(tokens);
  CHECK(tokens->strings == ref.get_array("tokenizer.ggml.tokens")->strings);
  CHECK(numbers(*file.get_array("tokenizer.ggml.scores")) == numbers(*ref.get_array("tokenizer.ggml.scores")));
  CHECK(numbers(*file.get_array("tokenizer.ggml.token_type")) ==
        numbers(*ref.get_array("tokenizer.ggml.token_type")));
  for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.unknown_token_id"}) {
    INFO(key);
    CHECK(file.get_int(key) == ref.get_int(key));
  }
  CHECK(file.get_bool("tokenizer.ggml.add_bos_token") == true);
  CHECK(file.get_bool("tokenizer.ggml.add_eos_token") == false);
  // Both read back into the same tokenizer, which encodes as llama2.c's.
  const Tokenizer ours = Tokenizer::from_gguf(file);
  const Tokenizer theirs = Tokenizer::from_gguf(ref);
  const Tokenizer llama2c = Tokenizer::load_llama2c(kTok, 512);
  for (const char* text : {"Once upon a time", "Lily and Tom went to the beach. They saw a big shell!",
                           "h\xC3\xA9llo \xE2\x98\x83 42"}) {
    INFO(text);
    CHECK(ours.encode(text, true, false) == theirs.encode(text, true, false));
    CHECK(ours.encode(text, true, false) == llama2c.encode(text, true, false));
  }
}

TEST_CASE("convert reads llama2.c versions 1 and 2 too", "[formats]") {
  TempDir dir;
  {
    const MappedFile mapped(kBin);
    const Model v0 = parse_llama2c_checkpoint(mapped);
    troupe::test::write_v1(v0, dir / "v1.bin");
    troupe::test::write_v2(v0, dir / "v2.bin", 4);  // 4 divides dim 64 and hidden 172
  }
  for (const std::string version : {"v1", "v2"}) {
    INFO(version);
    const std::string bin = dir / (version + ".bin");
    ok({"convert", bin, "--tokenizer", kTok, "--out", dir / (version + ".gguf")});
    const MappedFile mapped(bin);
    const Model model = parse_llama2c_checkpoint(mapped);
    const GgufFile file = GgufFile::open(dir / (version + ".gguf"));
    CHECK(file.tensors().size() == 2 + 9 * std::size_t(model.config.n_layers));
    for (const GgufTensorInfo& t : file.tensors()) {
      INFO(t.name);
      const std::vector<float> want = checkpoint_floats(model, t.name);
      REQUIRE(t.elements() == want.size());
      CHECK(std::memcmp(t.data, want.data(), want.size() * 4) == 0);
    }
    // Version 1 holds the same floats as the original.
    if (version == "v1") {
      const GgufFile v0 = GgufFile::open(converted("f32"));
      for (const GgufTensorInfo& t : file.tensors()) {
        INFO(t.name);
        CHECK(std::memcmp(t.data, v0.find_tensor(t.name)->data, t.bytes) == 0);
      }
    }
  }
}

TEST_CASE("convert to f16 and q8_0 reads back within quantization error", "[formats]") {
  const MappedFile mapped(kBin);
  const Model model = parse_llama2c_checkpoint(mapped);
  for (const std::string type : {"f16", "q8_0", "q4_0"}) {
    const GgufFile file = GgufFile::open(converted(type));
    const GgmlType want_type = *parse_ggml_weight_type(type);
    CHECK(file.get_int("general.file_type") == llama_file_type(want_type));
    CHECK((file.find("general.quantization_version") != nullptr) == (want_type != GgmlType::f16));
    for (const GgufTensorInfo& t : file.tensors()) {
      INFO(type << " " << t.name);
      const bool norm = t.dims.size() == 1;
      // ffn_down's rows hold 172 values, not whole 32-value blocks: it stays f32 for q8_0/q4_0.
      const bool widened = want_type != GgmlType::f16 && t.dims[0] % 32 != 0;
      const GgmlType expect = norm || widened ? GgmlType::f32 : want_type;
      CHECK(t.type == static_cast<uint32_t>(expect));
      const std::vector<float> got = floats(t);
      const std::vector<float> want = checkpoint_floats(model, t.name);
      REQUIRE(got.size() == want.size());
      // Quantized rows are whole 32-value blocks, so blocks of 32 from the start are theirs.
      for (std::size_t i = 0; i < got.size(); i += 32) {
        float amax = 0;
        const std::size_t end = std::min(got.size(), i + 32);
        for (std::size_t j = i; j < end; j++) amax = std::max(amax, std::fabs(want[j]));
        for (std::size_t j = i; j < end; j++) {
          const float err = std::fabs(got[j] - want[j]);
          switch (expect) {
            case GgmlType::f32: REQUIRE(err == 0.0f); break;
            case GgmlType::f16: REQUIRE(err <= std::fabs(want[j]) * 0x1p-11f + 0x1p-24f); break;
            // Half a step of d = amax/127, plus the rounding of d to fp16.
            case GgmlType::q8_0: REQUIRE(err <= amax / 127 * 0.5f + amax * 0x1p-10f); break;
            // d = -(the value of largest magnitude)/8 covers [-7|d|, 8|d|] on the other side:
            // a whole step where it clamps, half a step elsewhere.
            case GgmlType::q4_0: REQUIRE(err <= amax / 8 + amax * 0x1p-8f); break;
            default: FAIL("no error bound for " << ggml_type_name(t.type)); break;
          }
        }
      }
    }
  }
}

TEST_CASE("convert notes the matrices it keeps in f32", "[formats]") {
  TempDir dir;
  const auto r = ok({"convert", kBin, "--tokenizer", kTok, "--out", dir / "q.gguf", "--type", "q8_0"});
  CHECK(r.err.find("blk.0.ffn_down.weight") != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  const auto f = ok({"convert", kBin, "--tokenizer", kTok, "--out", dir / "f.gguf"});
  CHECK(f.err.empty());
  CHECK(std::filesystem::exists(dir / "f.gguf"));
  CHECK(!std::filesystem::exists(dir / "f.gguf.tmp"));
}

TEST_CASE("synth: same flags, same bytes, and another seed, other bytes", "[formats]") {
  TempDir dir;
  ok(small_synth(dir / "a.gguf"));
  ok(small_synth(dir / "b.gguf", {"--seed", "1", "--threads", "1"}));  // the default seed, one thread
  ok(small_synth(dir / "c.gguf", {"--seed", "2"}));
  const std::string a = read_all(dir / "a.gguf");
  CHECK(a.size() > 100000);
  CHECK(a == read_all(dir / "b.gguf"));
  CHECK(a != read_all(dir / "c.gguf"));

  const GgufFile file = GgufFile::open(dir / "a.gguf");
  CHECK(file.get_int("llama.block_count") == 3);
  CHECK(file.get_int("llama.embedding_length") == 64);
  CHECK(file.get_int("llama.attention.head_count_kv") == 2);
  CHECK(file.find_tensor(llama_gguf::kOutput));  // custom shapes have their own classifier
  for (const GgufTensorInfo& t : file.tensors()) {
    INFO(t.name);
    const std::vector<float> v = floats(t);
    if (t.dims.size() == 1) {
      CHECK(std::all_of(v.begin(), v.end(), [](float x) { return x == 1.0f; }));
      continue;
    }
    const float bound = 1.0f / std::sqrt(static_cast<float>(t.dims[0]));
    float lo = 0, hi = 0;
    double sum = 0;
    for (float x : v) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
      sum += x;
    }
    CHECK(lo >= -bound);
    CHECK(hi <= bound);
    CHECK(lo < -0.9f * bound);  // spread over the whole range
    CHECK(hi > 0.9f * bound);
    CHECK(std::fabs(sum / v.size()) < 0.1 * bound);
  }
  // Tensors of the same shape differ (seeded by name).
  CHECK(std::memcmp(file.find_tensor("blk.0.attn_q.weight")->data,
                    file.find_tensor("blk.1.attn_q.weight")->data, 64 * 64 * 4) != 0);
}

TEST_CASE("synth --layers-keep writes the first layers with the same bytes", "[formats]") {
  TempDir dir;
  ok(small_synth(dir / "full.gguf", {"--type", "q8_0"}));
  ok(small_synth(dir / "kept.gguf", {"--type", "q8_0", "--layers-keep", "2"}));
  const GgufFile full = GgufFile::open(dir / "full.gguf");
  const GgufFile kept = GgufFile::open(dir / "kept.gguf");
  CHECK(kept.get_int("llama.block_count") == 2);
  CHECK(kept.tensors().size() == full.tensors().size() - 9);
  CHECK(!kept.find_tensor("blk.2.attn_q.weight"));
  for (const GgufTensorInfo& t : kept.tensors()) {
    INFO(t.name);
    const GgufTensorInfo* f = full.find_tensor(t.name);
    REQUIRE(f);
    CHECK(f->type == t.type);
    CHECK(f->dims == t.dims);
    CHECK(std::memcmp(f->data, t.data, t.bytes) == 0);
  }
  CHECK(full.find_tensor("blk.0.ffn_gate.weight")->type == static_cast<uint32_t>(GgmlType::q8_0));
  CHECK(full.get_int("general.quantization_version") == 2);
}

TEST_CASE("synth's vocabulary encodes any text by bytes", "[formats]") {
  TempDir dir;
  ok(small_synth(dir / "v.gguf"));
  const GgufFile file = GgufFile::open(dir / "v.gguf");
  const Tokenizer tok = Tokenizer::from_gguf(file);
  REQUIRE(tok.vocab_size() == 300);
  CHECK(tok.piece(0) == "<unk>");
  CHECK(tok.piece(1) == "<s>");
  CHECK(tok.piece(2) == "</s>");
  CHECK(tok.piece(3) == "<0x00>");
  CHECK(tok.piece(258) == "<0xFF>");
  CHECK(tok.vocab().types[258] == TokenType::byte);
  CHECK(tok.piece(259) == "\xE2\x96\x81");
  const std::string text = "Hello, w\xC3\xB6rld! \xF0\x9F\x99\x82";
  const std::vector<int> ids = tok.encode(text, true, false);
  REQUIRE(!ids.empty());
  CHECK(ids[0] == 1);
  std::string back;
  for (std::size_t i = 1; i < ids.size(); i++) {
    CHECK(ids[i] != 0);  // never <unk>
    back += tok.decode(ids[i - 1], ids[i]);
  }
  CHECK(back == text);
}

TEST_CASE("synth embeds a given vocabulary", "[formats]") {
  TempDir dir;
  // A llama2.c tokenizer, converted as `convert` does.
  auto args = kSmall;
  args[12] = "512";  // --vocab
  args.insert(args.end(), {"--tokenizer", kTok, "--out", dir / "l.gguf"});
  ok(args);
  const GgufFile l = GgufFile::open(dir / "l.gguf");
  CHECK(l.get_array("tokenizer.ggml.tokens")->strings ==
        GgufFile::open(kLlamaCpp).get_array("tokenizer.ggml.tokens")->strings);
  // A GGUF vocabulary: its tokenizer.* keys are copied.
  const std::string spm = shared_dir() + "/models/gguf-vocab/ggml-vocab-llama-spm.gguf";
  const GgufFile src = GgufFile::open(spm);
  const auto n = src.get_array("tokenizer.ggml.tokens")->strings.size();
  args = kSmall;
  args[12] = std::to_string(n);
  args.insert(args.end(), {"--tokenizer", spm, "--out", dir / "s.gguf"});
  ok(args);
  const GgufFile s = GgufFile::open(dir / "s.gguf");
  for (const auto& [k, v] : src.metadata()) {
    if (k.rfind("tokenizer.", 0) != 0) continue;
    INFO(k);
    REQUIRE(s.find(k));
    CHECK(describe(*s.find(k)) == describe(v));
  }
  CHECK(s.get_array("tokenizer.ggml.tokens")->strings == src.get_array("tokenizer.ggml.tokens")->strings);
  // Its size must match the shape's vocabulary.
  expect_bad_input({"synth", "--shape", "llama3-8b", "--tokenizer", spm, "--out", dir / "x.gguf"},
                   "ggml-vocab-llama-spm.gguf");
}

TEST_CASE("synth's named shapes have the real shapes", "[formats]") {
  TempDir dir;
  ok({"synth", "--shape", "llama3-8b", "--layers-keep", "1", "--type", "q4_0", "--out", dir / "l3.gguf"});
  const GgufFile l3 = GgufFile::open(dir / "l3.gguf");
  CHECK(l3.get_int("llama.embedding_length") == 4096);
  CHECK(l3.get_int("llama.feed_forward_length") == 14336);
  CHECK(l3.get_int("llama.block_count") == 1);
  CHECK(l3.get_int("llama.attention.head_count_kv") == 8);
  CHECK(l3.get_int("llama.vocab_size") == 128256);
  CHECK(l3.get_int("llama.context_length") == 8192);
  CHECK(l3.get_float("llama.rope.freq_base") == Approx(500000.0));
  CHECK(l3.find_tensor("token_embd.weight")->dims == std::vector<uint64_t>{4096, 128256});
  CHECK(l3.find_tensor("blk.0.attn_k.weight")->dims == std::vector<uint64_t>{4096, 1024});
  CHECK(l3.find_tensor("blk.0.ffn_down.weight")->dims == std::vector<uint64_t>{14336, 4096});
  CHECK(l3.find_tensor("blk.0.ffn_down.weight")->type == static_cast<uint32_t>(GgmlType::q4_0));
  CHECK(l3.find_tensor("output.weight"));
  ok({"synth", "--shape", "stories15m", "--out", dir / "s15.gguf"});
  const GgufFile s15 = GgufFile::open(dir / "s15.gguf");
  CHECK(s15.get_int("llama.block_count") == 6);
  CHECK(!s15.find_tensor("output.weight"));  // llama2.c's stories models share the classifier
  CHECK(s15.find_tensor("token_embd.weight")->dims == std::vector<uint64_t>{288, 32000});
}

TEST_CASE("info describes every kind of model file", "[formats]") {
  TempDir dir;
  {
    const auto r = ok({"info", kBin});
    CHECK(r.out.find("llama2.c v0") != std::string::npos);
    CHECK(r.out.find("dim 64, hidden 172, layers 5, heads 8, kv heads 4, head size 8, vocab 512, context 512") != std::string::npos);
    CHECK(r.out.find("tok512.bin") != std::string::npos);
    CHECK(r.err.empty());
  }
  {
    const auto r = ok({"info", kLlamaCpp});
    CHECK(r.out.find("GGUF v3") != std::string::npos);
    CHECK(r.out.find("architecture   llama") != std::string::npos);
    CHECK(r.out.find("dim 64, hidden 172, layers 5, heads 8, kv heads 4, head size 8, vocab 512, context 128") != std::string::npos);
    CHECK(r.out.find("48: f32 48") != std::string::npos);
    CHECK(r.out.find("output.weight (separate)") != std::string::npos);
    CHECK(r.out.find("512 tokens, llama (SentencePiece)") != std::string::npos);
    CHECK(r.out.find("bos 1 \"<s>\"") != std::string::npos);
    CHECK(r.out.find("chat template  none") != std::string::npos);
  }
  {
    const auto r = ok({"info", converted("q8_0")});
    CHECK(r.out.find("f32 16, q8_0 31") != std::string::npos);
    CHECK(r.out.find("tied to token_embd.weight") != std::string::npos);
    CHECK(r.out.find("per layer (5 layers)") != std::string::npos);
  }
  for (const char* name : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"}) {
    const auto r = ok({"info", shared_dir() + "/models/gguf-vocab/" + name});
    INFO(r.out);
    CHECK(r.out.find("vocabulary-only") != std::string::npos);
    CHECK(r.out.find("tokens, ") != std::string::npos);
    CHECK(r.err.empty());
  }
  {
    const auto r = ok({"info", shared_dir() + "/models/gguf-vocab/ggml-vocab-gpt-2.gguf"});
    CHECK(r.out.find("gpt2 (byte-level BPE)") != std::string::npos);
  }
  // A tensor type troupe cannot compute with is described, not refused.
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.embedding_length", 32);
  w.add_tensor("blk.0.attn_q.weight", {32, 32}, GgmlType::q8_0, {});
  w.write(dir / "odd.gguf");
  std::string bytes = read_all(dir / "odd.gguf");
  // Retype the one tensor as q4_1 (type 3: 32-value blocks of 20 bytes, smaller than q8_0's).
  const std::size_t at = bytes.find("blk.0.attn_q.weight") + 19 + 4 + 16;
  uint32_t q4_1 = 3;
  std::memcpy(&bytes[at], &q4_1, 4);
  std::ofstream(dir / "odd.gguf", std::ios::binary).write(bytes.data(), bytes.size());
  const auto r = ok({"info", dir / "odd.gguf"});
  CHECK(r.out.find("q4_1 1") != std::string::npos);
  CHECK(r.out.find("cannot compute with q4_1") != std::string::npos);
}

TEST_CASE("model-file commands refuse bad input with one line and exit 2", "[formats]") {
  TempDir dir;
  const std::string out = dir / "out.gguf";
  // convert
  expect_bad_input({"convert", "/nonexistent/x.bin", "--tokenizer", kTok, "--out", out}, "/nonexistent/x.bin");
  expect_bad_input({"convert", kBin, "--tokenizer", "/nonexistent/tok.bin", "--out", out}, "/nonexistent/tok.bin");
  expect_bad_input({"convert", kBin, "--out", out}, "--tokenizer");
  expect_bad_input({"convert", kBin, "--tokenizer", kTok}, "--out");
  expect_bad_input({"convert", kBin, "--tokenizer", kTok, "--out", out, "--type", "q5_k"}, "--type");
  expect_bad_input({"convert", kBin, "--tokenizer", kTok, "--out", "/nonexistent/dir/x.gguf"}, "/nonexistent/dir/x.gguf");
  expect_bad_input({"convert", kBin, "--tokenizer", kTok, "--out", dir.path}, dir.path);
  expect_bad_input({"convert", kLlamaCpp, "--tokenizer", kTok, "--out", out}, "already a GGUF");
  expect_bad_input({"convert", kTok, "--tokenizer", kTok, "--out", out}, "tok512.bin");
  // synth
  expect_bad_input({"synth", "--out", out}, "--shape");
  expect_bad_input({"synth", "--shape", "gpt-5", "--out", out}, "gpt-5");
  expect_bad_input({"synth", "--shape", "stories15m"}, "--out");
  expect_bad_input({"synth", "--shape", "stories15m", "--dim", "64", "--out", out}, "--dim");
  expect_bad_input({"synth", "--dim", "64", "--hidden", "96", "--out", out}, "--layers");
  expect_bad_input({"synth", "--shape", "stories15m", "--layers-keep", "0", "--out", out}, "--layers-keep");
  expect_bad_input({"synth", "--shape", "stories15m", "--layers-keep", "7", "--out", out}, "--layers-keep");
  expect_bad_input({"synth", "--shape", "stories15m", "--type", "int3", "--out", out}, "--type");
  expect_bad_input({"synth", "--shape", "stories15m", "--seed", "abc", "--out", out}, "--seed");
  expect_bad_input({"synth", "--shape", "stories15m", "--seed", "-3", "--out", out}, "--seed");
  expect_bad_input({"synth", "--shape", "stories15m", "--out", "/nonexistent/dir/x.gguf"}, "/nonexistent/dir/x.gguf");
  expect_bad_input({"synth", "--shape", "stories15m", "--tokenizer", "/nonexistent/t.bin", "--out", out}, "/nonexistent/t.bin");
  expect_bad_input({"synth", "--shape", "stories15m", "--tokenizer", kTok, "--out", out}, "tok512.bin");
  auto custom = small_synth(out);
  custom[4] = "100";  // --hidden: fine for f32
  custom[2] = "48";   // --dim 48: no row is a whole number of 32-value blocks
  custom.insert(custom.end(), {"--type", "q4_0"});
  expect_bad_input(custom, "--type q4_0");
  custom = small_synth(out);
  custom[8] = "5";  // --heads 5 does not divide --dim 64
  expect_bad_input(custom, "--heads");
  custom = small_synth(out);
  custom[6] = "-1";  // --layers
  expect_bad_input(custom, "--layers");
  CHECK(!std::filesystem::exists(out));
  // info
  expect_bad_input({"info", "/nonexistent/m.gguf"}, "/nonexistent/m.gguf");
  expect_bad_input({"info", kTok}, "tok512.bin");
  {
    std::string cut = read_all(kLlamaCpp).substr(0, 5000);
    std::ofstream(dir / "cut.gguf", std::ios::binary).write(cut.data(), cut.size());
    expect_bad_input({"info", dir / "cut.gguf"}, "cut.gguf");
  }
  expect_bad_input({"info"}, "file");
}

TEST_CASE("no progress output when stderr is not a terminal", "[formats]") {
  TempDir dir;
  const auto r = ok({"synth", "--shape", "stories15m", "--layers-keep", "1", "--out", dir / "p.gguf"});
  CHECK(r.err.empty());
  CHECK(r.out.find('\r') == std::string::npos);
  CHECK(r.out.find("wrote") != std::string::npos);
}

// Needs load_model to read GGUF files (the model and its tokenizer from the file).
TEST_CASE("troupe run on the converted GGUF prints what it prints on the checkpoint", "[formats]") {
  std::ifstream f(shared_dir() + "/reference/stories260K-cases.json");
  REQUIRE(f.good());
  const auto cases = nlohmann::json::parse(f);
  REQUIRE(cases.size() >= 6);
  const std::string gguf = converted("f32");
  auto fmt = [](double v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  for (const auto& c : cases) {
    std::vector<std::string> flags = {
        "-t", fmt(c["temperature"]), "-p", fmt(c["topp"]), "-s", std::to_string(c["seed"].get<long>()),
        "-n", std::to_string(c["steps"].get<int>()), "-i", c["prompt"].get<std::string>()};
    std::vector<std::string> args = {"run", gguf};
    args.insert(args.end(), flags.begin(), flags.end());
    const auto r = run_troupe(args);
    INFO("prompt '" << c["prompt"].get<std::string>() << "', t " << c["temperature"] << ", seed "
                    << c["seed"] << "\nstderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out == c["expected_stdout"].get<std::string>());
  }
}
