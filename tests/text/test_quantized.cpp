// How far quantized weights move the greedy text of a real model: the stories260K checkpoint
// converted to Q8_0 and Q4_0, run teacher-forced on the f32 model's own greedy continuations.
// The rates are what was measured when the kernels landed; a drop means a kernel or quantizer
// got worse.
#include <catch2/catch.hpp>

#include "support/process.hpp"
#include "troupe/kernels/kernels.hpp"
#include "troupe/model/transformer.hpp"
#include "troupe/text/sampler.hpp"
#include "troupe/text/tokenizer.hpp"

using namespace troupe;
using troupe::test::run_troupe;
using troupe::test::shared_dir;

namespace {

// The fraction of positions where `quantized` picks the f32 model's greedy next token, over
// the f32 model's greedy continuations of a few prompts.
double greedy_agreement(const Model& f32, const Model& quantized, const Tokenizer& tok) {
  ThreadPool pool(2);
  int agree = 0, total = 0;
  for (const char* prompt : {"", "Once upon a time", "The little dog", "Tom had a red ball",
                             "Lily and Tom went to the beach", "The sun was shining"}) {
    Transformer a(f32, LayerRange{0, f32.config.n_layers}, 200, pool);
    Transformer b(quantized, LayerRange{0, quantized.config.n_layers}, 200, pool);
    std::vector<int> tokens = tok.encode(prompt, true, false);
    for (int pos = 0; pos + 1 < 200; pos++) {
      if (pos >= static_cast<int>(tokens.size())) break;
      const int next_a = sample_argmax(a.forward(tokens[pos], pos), f32.config.vocab_size);
      const int next_b = sample_argmax(b.forward(tokens[pos], pos), f32.config.vocab_size);
      if (pos + 1 >= static_cast<int>(tokens.size())) {
        tokens.push_back(next_a);  // continue along the f32 model's own text
        total++;
        agree += next_a == next_b;
      }
    }
  }
  return double(agree) / total;
}

}  // namespace

TEST_CASE("quantized conversions keep the greedy text close", "[formats][quantized]") {
  const std::string dir = shared_dir() + "/models/stories260K";
  const std::string out = troupe::test::temp_dir();
  const Model f32 = load_model(dir + "/stories260K.bin");
  const Tokenizer tok = Tokenizer::load_llama2c(dir + "/tok512.bin", 512);
  struct Case {
    const char* type;
    double measured;
  };
  for (const Case c : {Case{"q8_0", 0.98}, Case{"q4_0", 0.82}}) {
    const std::string path = out + "/stories260K-" + c.type + ".gguf";
    const auto r = run_troupe({"convert", dir + "/stories260K.bin", "--tokenizer", dir + "/tok512.bin",
                               "--out", path, "--type", c.type});
    REQUIRE(r.exit_code == 0);
    const double rate = greedy_agreement(f32, load_model(path), tok);
    INFO(c.type << " agrees with f32 on " << rate * 100 << "% of greedy tokens");
    CHECK(rate >= c.measured);
    WARN(c.type << " greedy agreement with f32: " << rate * 100 << "%");
  }
  // Quantizing on load gives the same as converting first.
  LoadOptions q8;
  q8.quantize = WeightType::q8_0;
  CHECK(greedy_agreement(f32, load_model(dir + "/stories260K.bin", q8), tok) ==
        greedy_agreement(f32, load_model(out + "/stories260K-q8_0.gguf"), tok));
}

TEST_CASE("every ISA writes the same text for f16, Q8_0 and Q4_0 models", "[formats][quantized]") {
  // Bit-identical kernels end to end, in separate processes (the ISA is chosen once a process):
  // the prompt runs as a batch (interleaved tiles of Q8_0 / Q4_0 where the ISA has their kernels,
  // widened f16 tiles), then greedy generation token by token; the stories260K vocabulary makes
  // the generated tokens text.
  const std::string out = troupe::test::temp_dir();
  const std::string prompt = "Once upon a time there was a little girl named Lily who loved to play in the park";
  std::vector<std::string> isas;
  for (auto isa : kernels::kIsasBestFirst) {
    if (kernels::isa_available(isa)) isas.emplace_back(kernels::isa_name(isa));
  }
  for (const std::string type : {"f16", "q8_0", "q4_0"}) {
    const std::string path = out + "/isa-" + type + ".gguf";
    const auto made = run_troupe({"synth", "--dim", "256", "--hidden", "768", "--layers", "2",
                                  "--heads", "8", "--kv-heads", "2", "--vocab", "512", "--seq-len",
                                  "128", "--type", type, "--seed", "5", "--tokenizer",
                                  shared_dir() + "/models/stories260K/tok512.bin", "--out", path});
    REQUIRE(made.exit_code == 0);
    std::string first;
    for (const std::string& isa : isas) {
      const auto r = run_troupe({"run", path, "-t", "0", "-n", "80", "-i", prompt}, {{"TROUPE_ISA", isa}});
      INFO("type " << type << ", isa " << isa << "\nstderr: " << r.err);
      REQUIRE(r.exit_code == 0);
      REQUIRE(r.out.size() > prompt.size() + 15);  // generated text
      if (first.empty()) first = r.out;
      CHECK(r.out == first);
    }
  }
}
