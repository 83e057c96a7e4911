#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <vector>

#include "troupe/text/sampler.hpp"

using namespace troupe;

TEST_CASE("the generator is run.c's xorshift64*", "[sampler]") {
  // Values computed independently from run.c's formula, seed 42.
  Rng rng{42};
  CHECK(rng.next_u32() == 1456360119u);
  CHECK(rng.next_u32() == 3359763283u);
  CHECK(rng.next_u32() == 3393612768u);
  CHECK(rng.next_u32() == 4054632243u);
  Rng f{42};
  CHECK(f.next_f32() == (1456360119u >> 8) / 16777216.0f);
}

TEST_CASE("argmax takes the first of equal maxima", "[sampler]") {
  std::vector<float> p = {0.1f, 0.4f, 0.4f, 0.1f};
  CHECK(sample_argmax(p.data(), 4) == 1);
}

TEST_CASE("temperature 0 is greedy and draws nothing", "[sampler]") {
  Sampler s(4, 0.0f, 0.9f, 7);
  std::vector<float> logits = {1, 5, 3, -2};
  CHECK(s.sample(logits.data()) == 1);
  CHECK(s.rng_state() == 7);
}

TEST_CASE("sample_mult walks the cumulative distribution", "[sampler]") {
  std::vector<float> p = {0.25f, 0.25f, 0.5f};
  CHECK(sample_mult(p.data(), 3, 0.0f) == 0);
  CHECK(sample_mult(p.data(), 3, 0.3f) == 1);
  CHECK(sample_mult(p.data(), 3, 0.99f) == 2);
}

TEST_CASE("sampling follows the softmax distribution", "[sampler]") {
  // logits log(0.6), log(0.3), log(0.1) at temperature 1, no top-p: frequencies near 6:3:1.
  Sampler s(3, 1.0f, 1.0f, 1234);
  std::map<int, int> counts;
  for (int i = 0; i < 20000; i++) {
    std::vector<float> logits = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
    counts[s.sample(logits.data())]++;
  }
  CHECK(counts[0] == Approx(12000).epsilon(0.03));
  CHECK(counts[1] == Approx(6000).epsilon(0.05));
  CHECK(counts[2] == Approx(2000).epsilon(0.1));
}

TEST_CASE("top-p keeps only the nucleus", "[sampler]") {
  // p = 0.5, 0.3, 0.15, 0.05: with top-p 0.7 the nucleus is {0, 1}; 2 and 3 never come.
  Sampler s(4, 1.0f, 0.7f, 99);
  std::map<int, int> counts;
  for (int i = 0; i < 5000; i++) {
    std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
    counts[s.sample(logits.data())]++;
  }
  CHECK(counts[2] == 0);
  CHECK(counts[3] == 0);
  // Renormalised within the nucleus: 0.5/0.8 and 0.3/0.8.
  CHECK(counts[0] == Approx(5000 * 0.625).epsilon(0.05));
}

TEST_CASE("the same seed gives the same draws", "[sampler]") {
  auto draw = [](uint64_t seed) {
    Sampler s(5, 0.8f, 0.9f, seed);
    std::vector<int> out;
    for (int i = 0; i < 50; i++) {
      std::vector<float> logits = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
      out.push_back(s.sample(logits.data()));
    }
    return out;
  };
  CHECK(draw(5) == draw(5));
  CHECK(draw(5) != draw(6));
}
