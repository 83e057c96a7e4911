// Exact speculative decoding (text/draft.hpp, generate.hpp's Speculation): guesses checked in one
// batch change the speed, never the text.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "troupe/model/transformer.hpp"
#include "troupe/text/draft.hpp"
#include "troupe/text/generate.hpp"
#include "troupe/text/tokenizer.hpp"

using namespace troupe;
using troupe::test::shared_dir;

namespace {

struct Answer {
  std::string text;
  GenerationStats stats;
};

// stories260K, its tokenizer and llama2.c's reference cases.
struct Stories {
  std::string dir = shared_dir() + "/models/stories260K";
  Model model = load_model(dir + "/stories260K.bin");
  Tokenizer tok = Tokenizer::load_llama2c(dir + "/tok512.bin", 512);
  nlohmann::json cases = nlohmann::json::parse(std::ifstream(shared_dir() + "/reference/stories260K-cases.json"));
};

Answer answer(const Model& m, const Tokenizer& tok, const nlohmann::json& c, const Speculation& speculation) {
  ThreadPool pool(1);
  const int steps = c["steps"].get<int>();
  Transformer t(m, LayerRange{0, m.config.n_layers}, steps, pool);
  Sampler sampler(m.config.vocab_size, c["temperature"].get<float>(), c["topp"].get<float>(), c["seed"].get<uint64_t>());
  Answer a;
  a.stats = generate(t, tok, sampler, c["prompt"].get<std::string>(), steps,
                     [&](std::string_view piece) { a.text += piece; }, speculation);
  return a;
}

}  // namespace

TEST_CASE("prompt lookup guesses what followed the latest earlier occurrence of the last tokens", "[speculation]") {
  const std::vector<int> context = {1, 5, 6, 7, 9, 5, 6, 8, 2, 5, 6};
  // "5 6" last came before "8 2 5 6": the guesses are what followed it there.
  CHECK(lookup_drafts(context, 3) == std::vector<int>{8, 2, 5});
  CHECK(lookup_drafts(context, 1) == std::vector<int>{8});
  // Fewer tokens followed than asked for.
  CHECK(lookup_drafts(std::vector<int>{4, 9, 4}, 5) == std::vector<int>{9, 4});
  // The longest match wins: "7 9" occurs once, and only "9" elsewhere.
  CHECK(lookup_drafts(std::vector<int>{7, 9, 1, 3, 9, 2, 7, 9}, 2) == std::vector<int>{1, 3});
  // In a repeating stretch the latest occurrence is followed by too few tokens: an earlier one with
  // enough is taken.
  CHECK(lookup_drafts(std::vector<int>{3, 4, 5, 6, 3, 4, 3, 4}, 3) == std::vector<int>{5, 6, 3});
  CHECK(lookup_drafts(std::vector<int>{3, 4, 5, 6, 3, 4, 3, 4}, 2) == std::vector<int>{3, 4});
  // Nothing repeats, or nothing to look up.
  CHECK(lookup_drafts(std::vector<int>{1, 2, 3}, 4).empty());
  CHECK(lookup_drafts(std::vector<int>{}, 4).empty());
  CHECK(lookup_drafts(std::vector<int>{1, 1}, 0).empty());
}

TEST_CASE("after a rejected guess, the next positions give what a run that never saw it gives", "[speculation]") {
  const Model m = load_model(shared_dir() + "/models/stories260K/stories260K.bin");
  const int vocab = m.config.vocab_size;
  ThreadPool pool(1);
  Transformer plain(m, LayerRange{0, m.config.n_layers}, 32, pool), guessing(m, LayerRange{0, m.config.n_layers}, 32, pool);
  const std::vector<int> prompt = {1, 403, 407, 261, 378};
  plain.forward_batch(prompt, 0);
  guessing.forward_batch(prompt, 0);
  // The guessing run checks three wrong guesses after token 430 at position 5; the next token is
  // 285 whatever they were.
  const float* each = guessing.forward_each(std::vector<int>{430, 17, 18, 19}, 5);
  const float* one = plain.forward(430, 5);
  CHECK(std::vector<float>(each, each + vocab) == std::vector<float>(one, one + vocab));
  for (int pos = 6; pos < 12; pos++) {
    const int token = 285 + pos;
    const float* a = plain.forward(token, pos);
    const std::vector<float> expected(a, a + vocab);
    const float* b = guessing.forward(token, pos);
    CHECK(std::vector<float>(b, b + vocab) == expected);
  }
}

TEST_CASE("speculation by prompt lookup writes llama2.c's texts, greedy and seeded, and guesses right", "[speculation]") {
  const Stories s;
  int accepted = 0;
  for (const auto& c : s.cases) {
    INFO("prompt '" << c["prompt"].get<std::string>() << "', t " << c["temperature"] << ", seed " << c["seed"]);
    const std::string expected = c["expected_stdout"].get<std::string>();
    for (int k : {1, 4, 8}) {
      INFO(k << " guesses a step");
      const Answer a = answer(s.model, s.tok, c, {k, [](std::span<const int> context, int n) { return lookup_drafts(context, n); }});
      CHECK(a.text + "\n" == expected);
      CHECK(a.stats.drafted > 0);
      accepted += a.stats.accepted;
    }
  }
  CHECK(accepted > 0);
}

TEST_CASE("guesses that are always wrong still give the same text", "[speculation]") {
  const Stories s;
  // <unk> (id 0): stories260K never samples it.
  const Speculation wrong{4, [](std::span<const int>, int n) { return std::vector<int>(std::size_t(n), 0); }};
  for (const auto& c : s.cases) {
    INFO("prompt '" << c["prompt"].get<std::string>() << "', t " << c["temperature"]);
    const Answer a = answer(s.model, s.tok, c, wrong);
    CHECK(a.text + "\n" == c["expected_stdout"].get<std::string>());
    CHECK(a.stats.drafted > 0);
    CHECK(a.stats.accepted == 0);
  }
}
