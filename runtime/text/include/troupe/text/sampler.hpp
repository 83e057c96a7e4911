// Picks the next token from logits exactly as llama2.c's run.c does: argmax at temperature 0,
// otherwise softmax(logits / T) and one draw from run.c's xorshift generator, through top-p
// (nucleus) sampling when 0 < topp < 1. The same seed gives the same draws in the same order.
#pragma once

#include <cstdint>
#include <vector>

namespace troupe {

// run.c's xorshift64* generator.
struct Rng {
  uint64_t state;
  uint32_t next_u32();
  float next_f32();  // in [0, 1)
};

class Sampler {
 public:
  Sampler(int vocab_size, float temperature, float topp, uint64_t seed);

  // Overwrites logits (scaled and turned into probabilities when sampling).
  int sample(float* logits);

  float temperature() const { return temperature_; }
  float topp() const { return topp_; }
  uint64_t rng_state() const { return rng_.state; }

 private:
  struct ProbIndex {
    float prob;
    int index;
  };
  int sample_topp(const float* probs, float coin);

  int vocab_size_;
  float temperature_;
  float topp_;
  Rng rng_;
  std::vector<ProbIndex> candidates_;
};

int sample_argmax(const float* probs, int n);
int sample_mult(const float* probs, int n, float coin);

}  // namespace troupe
