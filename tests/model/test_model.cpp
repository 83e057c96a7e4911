#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <vector>

#include "support/checkpoint_writer.hpp"
#include "support/process.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/stage_model.hpp"
#include "troupe/model/transformer.hpp"

using namespace troupe;
using troupe::test::shared_dir;
using troupe::test::read_all;
using troupe::test::write_all;

namespace {
std::string stories_path() { return shared_dir() + "/models/stories260K/stories260K.bin"; }

// Logits for a fixed token sequence, one position after another.
std::vector<std::vector<float>> run_tokens(const Model& m, int threads) {
  ThreadPool pool(threads);
  Transformer t(m, LayerRange{0, m.config.n_layers}, 16, pool);
  std::vector<std::vector<float>> out;
  const int tokens[] = {1, 403, 407, 261, 378, 430, 285, 306};
  for (int pos = 0; pos < 8; pos++) {
    const float* l = t.forward(tokens[pos], pos);
    out.emplace_back(l, l + m.config.vocab_size);
  }
  return out;
}

// A prompt run as one batch ends with the logits of running it one token at a time, bit for bit,
// and leaves the same cache: the next token's logits agree too.
void check_batch_is_one_at_a_time(const Model& m, int layers, const std::vector<int>& tokens,
                                  int next) {
  ThreadPool pool(2);
  const int context = static_cast<int>(tokens.size()) + 1, vocab = m.config.vocab_size;
  Transformer one(m, LayerRange{0, layers}, context, pool);
  Transformer batch(m, LayerRange{0, layers}, context, pool);
  std::vector<float> a;
  for (int pos = 0; pos < static_cast<int>(tokens.size()); pos++) {
    const float* l = one.forward(tokens[pos], pos);
    a.assign(l, l + vocab);
  }
  const float* b = batch.forward_batch(tokens, 0);
  CHECK(std::vector<float>(b, b + vocab) == a);
  const float* na = one.forward(next, context - 1);
  const std::vector<float> next_a(na, na + vocab);
  const float* nb = batch.forward(next, context - 1);
  CHECK(std::vector<float>(nb, nb + vocab) == next_a);
}

int argmax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

// A two-layer model of `type` weights, of shapes past the batch's tiles (Q8_0 rows of 2816
// columns take two tiles a chunk), written by `troupe synth` into `dir`.
std::string synth_two_layers(const troupe::test::TempDir& dir, const std::string& type) {
  const std::string path = dir / (type + ".gguf");
  const auto r = troupe::test::run_troupe(
      {"synth", "--dim", "1024", "--hidden", "2816", "--layers", "2", "--heads", "16",
       "--kv-heads", "4", "--vocab", "300", "--seq-len", "64", "--type", type, "--out", path});
  REQUIRE(r.exit_code == 0);
  return path;
}

// Sessions of prompts of `lengths` tokens, started `stagger` passes apart, run through one stage
// in shared passes (prompts beside other sessions' next tokens, StageModel::forward_rows): every
// logit each session samples is that of running it alone, bit for bit.
void check_sessions_batched_are_alone(std::shared_ptr<const Model> m, int decode_steps,
                                      const std::vector<int>& lengths = {1, 3, 8, 13, 20}, int stagger = 1) {
  ThreadPool pool(2);
  const ModelConfig& c = m->config;
  const int context = *std::max_element(lengths.begin(), lengths.end()) + decode_steps + 1;
  std::vector<std::vector<int>> prompts;
  for (std::size_t i = 0; i < lengths.size(); i++) {
    std::vector<int> p;
    for (int t = 0; t < lengths[i]; t++) p.push_back(int((t * 37 + 11 * i + 5) % std::size_t(c.vocab_size - 3)) + 3);
    prompts.push_back(p);
  }
  // Alone: the logits each session samples from, greedy.
  std::vector<std::vector<std::vector<float>>> alone(prompts.size());
  for (std::size_t i = 0; i < prompts.size(); i++) {
    Transformer t(*m, LayerRange{0, c.n_layers}, context, pool);
    const float* l = t.forward_batch(prompts[i], 0);
    for (int step = 0; step < decode_steps; step++) {
      alone[i].emplace_back(l, l + c.vocab_size);
      if (step + 1 < decode_steps) l = t.forward(argmax(alone[i].back()), lengths[i] + step);
    }
  }
  // Batched: session i starts at pass i * stagger; a pass holds every started session's prompt or
  // next token.
  const auto stage = transformer_stage(m, pool);
  std::vector<std::unique_ptr<StageModel::Session>> sessions;
  std::vector<std::vector<std::vector<float>>> batched(prompts.size());
  std::vector<int> next_token(prompts.size(), -1);
  std::vector<float> x(std::size_t(StageModel::kMaxRows) * c.dim), logits(prompts.size() * c.vocab_size);
  for (std::size_t i = 0; i < prompts.size(); i++) sessions.push_back(stage->open(context));
  for (int pass = 0; pass < int(prompts.size()) * stagger + decode_steps; pass++) {
    std::vector<StageModel::Rows> rows;
    std::vector<std::size_t> who;
    float* at = x.data();
    for (std::size_t i = 0; i < prompts.size() && int(i) * stagger <= pass; i++) {
      const int step = pass - int(i) * stagger;  // 0: the prompt
      if (step >= decode_steps) continue;
      const std::vector<int> in = step == 0 ? prompts[i] : std::vector<int>{next_token[i]};
      for (std::size_t t = 0; t < in.size(); t++) sessions[i]->embed(in[t], at + t * c.dim);
      rows.push_back({sessions[i].get(), step == 0 ? 0 : lengths[i] + step - 1, int(in.size()), true});
      who.push_back(i);
      at += in.size() * c.dim;
    }
    stage->forward_rows(x.data(), rows, logits.data());
    for (std::size_t r = 0; r < who.size(); r++) {
      const float* l = logits.data() + r * c.vocab_size;
      batched[who[r]].emplace_back(l, l + c.vocab_size);
      next_token[who[r]] = argmax(batched[who[r]].back());
    }
  }
  for (std::size_t i = 0; i < prompts.size(); i++) {
    INFO("session " << i);
    REQUIRE(batched[i].size() == alone[i].size());
    for (std::size_t step = 0; step < alone[i].size(); step++) CHECK(batched[i][step] == alone[i][step]);
  }
}
}  // namespace

TEST_CASE("stories260K loads with its shape", "[model]") {
  const Model m = load_model(stories_path());
  CHECK(m.format == "llama2.c v0 (legacy)");
  CHECK(m.config.dim == 64);
  CHECK(m.config.hidden_dim == 172);
  CHECK(m.config.n_layers == 5);
  CHECK(m.config.n_heads == 8);
  CHECK(m.config.n_kv_heads == 4);
  CHECK(m.config.vocab_size == 512);
  CHECK(m.config.seq_len == 512);
  CHECK(m.shared_classifier);
  CHECK(m.layers.size() == 5);
  CHECK(m.classifier.data == m.token_embedding.data);
  // Every layer matrix plus norms and the classifier, read once per token.
  const std::size_t per_layer = (64 * 64 * 2 + 32 * 64 * 2 + 172 * 64 * 3 + 64 * 2) * 4;
  CHECK(m.bytes_per_token() == 5 * per_layer + 512 * 64 * 4 + 64 * 4);
}

TEST_CASE("the forward pass does not depend on the thread count", "[model]") {
  const Model m = load_model(stories_path());
  CHECK(run_tokens(m, 1) == run_tokens(m, 2));
  CHECK(run_tokens(m, 1) == run_tokens(m, 3));
}

TEST_CASE("a version-1 checkpoint gives the same logits as version 0", "[model]") {
  const Model v0 = load_model(stories_path());
  const std::string path = troupe::test::temp_dir() + "/v1.bin";
  troupe::test::write_v1(v0, path);
  const Model v1 = load_model(path);
  CHECK(v1.format == "llama2.c v1");
  CHECK(v1.shared_classifier);
  CHECK(run_tokens(v1, 2) == run_tokens(v0, 2));
}

TEST_CASE("a version-2 (int8 groups) checkpoint stays close to fp32", "[model]") {
  const Model v0 = load_model(stories_path());
  const std::string path = troupe::test::temp_dir() + "/v2.bin";
  // 4 divides both dim (64) and hidden_dim (172).
  troupe::test::write_v2(v0, path, 4);
  const Model v2 = load_model(path);
  CHECK(v2.format == "llama2.c v2");
  REQUIRE(v2.layers[0].wq.type == WeightType::q8_groups);
  const auto a = run_tokens(v0, 2), b = run_tokens(v2, 2);
  int same_argmax = 0;
  for (std::size_t pos = 0; pos < a.size(); pos++) {
    double dot = 0, na = 0, nb = 0;
    for (std::size_t i = 0; i < a[pos].size(); i++) {
      dot += a[pos][i] * b[pos][i];
      na += a[pos][i] * a[pos][i];
      nb += b[pos][i] * b[pos][i];
    }
    CHECK(dot / std::sqrt(na * nb) > 0.99);
    same_argmax += argmax(a[pos]) == argmax(b[pos]);
  }
  CHECK(same_argmax >= 6);
  // The scalar and SIMD int8 paths agree bit for bit.
  CHECK(run_tokens(v2, 1) == run_tokens(v2, 2));
}

TEST_CASE("version 2 needs a group size that divides both widths", "[model][errors]") {
  const Model v0 = load_model(stories_path());
  const std::string path = troupe::test::temp_dir() + "/v2.bin";
  troupe::test::write_v2(v0, path, 64);  // 172 % 64 != 0
  CHECK_THROWS_WITH(load_model(path), Catch::Contains("group size 64"));
}

TEST_CASE("truncated checkpoints are rejected at every length", "[model][errors]") {
  const std::string bytes = read_all(stories_path());
  const std::string path = troupe::test::temp_dir() + "/cut.bin";
  // Everything the shared-classifier model uses ends before the RoPE tables it skips.
  const std::size_t used = 28 + std::size_t(4) * (512 * 64 + 5 * (64 * 64 * 2 + 32 * 64 * 2 +
                                                                  172 * 64 * 3 + 64 * 2) + 64);
  for (std::size_t cut = 0; cut < used; cut += used / 97 + 1) {
    write_all(path, bytes.substr(0, cut));
    INFO("cut at " << cut);
    CHECK_THROWS_AS(load_model(path), InputError);
  }
  write_all(path, bytes.substr(0, used));
  CHECK_NOTHROW(load_model(path));
}

TEST_CASE("absurd header fields are rejected", "[model][errors]") {
  const std::string bytes = read_all(stories_path());
  const std::string path = troupe::test::temp_dir() + "/noisy.bin";
  struct Case {
    int field;
    int32_t value;
    const char* expect;
  };
  const Case cases[] = {
      {0, 0, "dim"},          {0, -64, "dim"},        {1, 1 << 30, "hidden_dim"},
      {2, 0, "n_layers"},     {3, 0, "n_heads"},      {3, 7, "multiple of n_heads"},
      {4, 3, "n_kv_heads"},   {4, 1 << 20, "n_kv_heads"}, {5, 0, "vocab_size"},
      {5, INT32_MIN, "vocab_size"}, {6, -1, "seq_len"}, {2, 1000, "truncated"},
      {5, 1 << 21, "truncated"},
  };
  for (const Case& c : cases) {
    std::string noisy = bytes;
    std::memcpy(noisy.data() + 4 * c.field, &c.value, 4);
    write_all(path, noisy);
    INFO("field " << c.field << " = " << c.value);
    CHECK_THROWS_WITH(load_model(path), Catch::Contains(c.expect));
  }
}

TEST_CASE("random bytes are never taken for a model", "[model][errors]") {
  const std::string path = troupe::test::temp_dir() + "/noise.bin";
  uint64_t s = 88172645463325252ull;
  for (int round = 0; round < 200; round++) {
    std::string noise(64 + round * 37, '\0');
    for (auto& ch : noise) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      ch = static_cast<char>(s);
    }
    write_all(path, noise);
    CHECK_THROWS_AS(load_model(path), InputError);
  }
}

TEST_CASE("a batched prompt gives the floats of one token at a time", "[model]") {
  check_batch_is_one_at_a_time(load_model(stories_path()), 5,
                               {1, 403, 407, 261, 378, 430, 285, 306, 290, 300, 310}, 5);
}

TEST_CASE("a batched prompt of f16, Q8_0 and Q4_0 weights gives the floats of one token at a time",
          "[model]") {
  // 27 tokens run as passes of 8 and a remainder; the interleaved kernels run where the CPU has them,
  // f16 tiles are widened for the f32 kernel.
  troupe::test::TempDir dir;
  for (const std::string type : {"f16", "q8_0", "q4_0"}) {
    INFO("type " << type);
    const std::string path = synth_two_layers(dir, type);
    std::vector<int> tokens;
    for (int i = 0; i < 27; i++) tokens.push_back((i * 37 + 5) % 300);
    check_batch_is_one_at_a_time(load_model(path), 2, tokens, 7);
  }
}

TEST_CASE("sessions batched in shared passes give the floats of each run alone", "[model][batch]") {
  check_sessions_batched_are_alone(std::make_shared<const Model>(load_model(stories_path())), 6);
}

TEST_CASE("twenty sessions that sample in one pass get each its own logits", "[model][batch]") {
  std::vector<int> lengths;
  for (int i = 0; i < 20; i++) lengths.push_back(1 + i % 4);  // more sampling rows than one logits call takes
  check_sessions_batched_are_alone(std::make_shared<const Model>(load_model(stories_path())), 3, lengths, 0);
}

TEST_CASE("sessions batched in shared passes over f16, Q8_0 and Q4_0 weights give the floats of each run alone",
          "[model][batch]") {
  troupe::test::TempDir dir;
  for (const std::string type : {"f16", "q8_0", "q4_0"}) {
    INFO("type " << type);
    const std::string path = synth_two_layers(dir, type);
    check_sessions_batched_are_alone(std::make_shared<const Model>(load_model(path)), 4);
  }
}

TEST_CASE("weights left mapped give the same floats as weights in memory", "[model]") {
  LoadOptions mapped;
  mapped.mmap = true;
  CHECK(run_tokens(load_model(stories_path(), mapped), 2) == run_tokens(load_model(stories_path()), 2));
}

TEST_CASE("a stage holds only its own layers", "[model]") {
  const Model all = load_model(stories_path());
  LoadOptions middle;
  middle.layers = LayerRange{1, 3};
  const Model m = load_model(stories_path(), middle);
  CHECK_FALSE(m.has_embedding());
  CHECK_FALSE(m.has_head());
  CHECK(m.layers[0].wq.data == nullptr);
  CHECK(m.layers[1].wq.data != nullptr);
  CHECK(m.layers[3].w2.data == nullptr);
  CHECK(m.resident_weight_bytes() == all.layers[1].bytes() * 2 + 4 * 64 * 4);
  // It runs its layers and nothing else.
  ThreadPool pool(1);
  CHECK_NOTHROW(Transformer(m, LayerRange{1, 3}, 8, pool));
  CHECK_THROWS_AS(Transformer(m, LayerRange{0, 3}, 8, pool), InputError);
  LoadOptions last;
  last.layers = LayerRange{3, 5};
  const Model tail = load_model(stories_path(), last);
  CHECK(tail.has_head());
  CHECK_FALSE(tail.has_embedding());
  LoadOptions bad;
  bad.layers = LayerRange{2, 9};
  CHECK_THROWS_AS(load_model(stories_path(), bad), InputError);
}

TEST_CASE("a context outside the model's is refused before its cache is allocated", "[model][errors]") {
  // A stage takes the context from a peer's frame. Were the cache allocated first, INT_MAX
  // positions would ask for terabytes (std::bad_alloc, or a zero-fill that exhausts memory)
  // instead of failing the session with an InputError.
  const Model m = load_model(stories_path());
  ThreadPool pool(1);
  CHECK_THROWS_AS(Transformer(m, LayerRange{0, 5}, std::numeric_limits<int>::max(), pool), InputError);
  CHECK_THROWS_AS(Transformer(m, LayerRange{0, 5}, -1, pool), InputError);
  CHECK_THROWS_AS(Transformer(m, LayerRange{0, 5}, m.config.seq_len + 1, pool), InputError);
  CHECK_NOTHROW(Transformer(m, LayerRange{0, 5}, m.config.seq_len, pool));
}

TEST_CASE("a stage pipeline gives the floats of the whole model", "[model]") {
  // Layers [0,2) then [2,5), handing the hidden state over as a mesh does.
  const Model all = load_model(stories_path());
  LoadOptions head, tail;
  head.layers = LayerRange{0, 2};
  tail.layers = LayerRange{2, 5};
  const Model a = load_model(stories_path(), head), b = load_model(stories_path(), tail);
  ThreadPool pool(2);
  Transformer whole(all, LayerRange{0, 5}, 8, pool), first(a, LayerRange{0, 2}, 8, pool),
      second(b, LayerRange{2, 5}, 8, pool);
  std::vector<float> x(64);
  for (int pos = 0; pos < 4; pos++) {
    const int token = 300 + pos;
    const float* want = whole.forward(token, pos);
    std::vector<float> expected(want, want + 512);
    first.embed(token, x.data());
    first.forward_layers(x.data(), 1, pos);
    second.forward_layers(x.data(), 1, pos);
    const float* got = second.logits(x.data());
    CHECK(std::vector<float>(got, got + 512) == expected);
  }
}

TEST_CASE("an f32 GGUF written by llama.cpp gives the checkpoint's floats", "[model]") {
  const Model bin = load_model(stories_path());
  const Model gguf = load_model(shared_dir() + "/models/stories260K/stories260K-llamacpp-f32.gguf");
  CHECK(gguf.format == "GGUF v3");
  CHECK(gguf.config.dim == 64);
  CHECK(gguf.config.n_kv_heads == 4);
  CHECK(gguf.config.rms_eps == 1e-5f);
  CHECK(run_tokens(gguf, 2) == run_tokens(bin, 2));
}
