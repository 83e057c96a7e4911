#include "troupe/text/sampler.hpp"

#include <algorithm>

#include "troupe/kernels/kernels.hpp"

namespace troupe {

uint32_t Rng::next_u32() {
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return static_cast<uint32_t>((state * 0x2545F4914F6CDD1Dull) >> 32);
}

float Rng::next_f32() { return (next_u32() >> 8) / 16777216.0f; }

Sampler::Sampler(int vocab_size, float temperature, float topp, uint64_t seed)
    : vocab_size_(vocab_size), temperature_(temperature), topp_(topp), rng_{seed} {
  candidates_.resize(vocab_size);
}

int sample_argmax(const float* probs, int n) {
  int max_i = 0;
  float max_p = probs[0];
  for (int i = 1; i < n; i++) {
    if (probs[i] > max_p) {
      max_i = i;
      max_p = probs[i];
    }
  }
  return max_i;
}

int sample_mult(const float* probs, int n, float coin) {
  float cdf = 0.0f;
  for (int i = 0; i < n; i++) {
    cdf += probs[i];
    if (coin < cdf) return i;
  }
  return n - 1;  // rounding
}

int Sampler::sample_topp(const float* probs, float coin) {
  // Tokens below this probability cannot be part of the nucleus; dropping them first makes the
  // sort short.
  const int n = vocab_size_;
  const float cutoff = (1.0f - topp_) / (n - 1);
  int n0 = 0;
  for (int i = 0; i < n; i++) {
    if (probs[i] >= cutoff) candidates_[n0++] = {probs[i], i};
  }
  if (n0 == 0) return sample_argmax(probs, n);  // only with NaN logits or a vocabulary of one
  // run.c uses qsort, which glibc implements as a stable merge sort; ties keep index order.
  std::stable_sort(candidates_.begin(), candidates_.begin() + n0,
                   [](const ProbIndex& a, const ProbIndex& b) { return a.prob > b.prob; });
  float cumulative = 0.0f;
  int last = n0 - 1;
  for (int i = 0; i < n0; i++) {
    cumulative += candidates_[i].prob;
    if (cumulative > topp_) {
      last = i;
      break;
    }
  }
  const float r = coin * cumulative;
  float cdf = 0.0f;
  for (int i = 0; i <= last; i++) {
    cdf += candidates_[i].prob;
    if (r < cdf) return candidates_[i].index;
  }
  return candidates_[last].index;
}

int Sampler::sample(float* logits) {
  if (temperature_ == 0.0f) return sample_argmax(logits, vocab_size_);
  for (int i = 0; i < vocab_size_; i++) logits[i] /= temperature_;
  kernels::softmax(logits, vocab_size_);
  const float coin = rng_.next_f32();
  if (topp_ <= 0 || topp_ >= 1) return sample_mult(logits, vocab_size_, coin);
  return sample_topp(logits, coin);
}

}  // namespace troupe
