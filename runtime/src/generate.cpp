#include "troupe/runtime/generate.hpp"

#include <algorithm>
#include <chrono>
#include <string>

#include "troupe/runtime/error.hpp"

namespace troupe {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

double GenerationStats::decode_tokens_per_s() const {
  return decode_ms > 0 ? (generated_tokens - 1) * 1000.0 / decode_ms : 0;
}

double GenerationStats::prompt_tokens_per_s() const {
  return first_token_ms > 0 ? prompt_tokens * 1000.0 / first_token_ms : 0;
}

GenerationStats generate(Transformer& transformer, const Tokenizer& tokenizer, Sampler& sampler,
                         std::string_view prompt, int steps,
                         const std::function<void(std::string_view)>& emit) {
  const std::vector<int> tokens = tokenizer.encode(prompt, true, false);
  const int seq_len = transformer.config().seq_len;
  if (tokens.empty()) throw InputError("the prompt encodes to no tokens");
  if (static_cast<int>(tokens.size()) > seq_len) {
    throw InputError("prompt is " + std::to_string(tokens.size()) +
                     " tokens, longer than the model's context of " + std::to_string(seq_len));
  }
  GenerationStats stats;
  const int n_prompt = static_cast<int>(tokens.size());
  stats.prompt_tokens = n_prompt;
  const auto t0 = std::chrono::steady_clock::now();
  std::string text;
  auto print = [&](int prev, int next) {
    text.clear();
    append_printable(text, tokenizer.decode(prev, next));
    if (!text.empty()) emit(text);
  };

  // The prompt, as one batch (at most `steps` positions, as run.c counts them). run.c prints
  // each prompt piece as it goes and stops at an end token, even one inside the prompt.
  const int prefill = std::min(n_prompt, steps);
  float* logits = prefill > 0 ? transformer.forward_batch({tokens.data(), std::size_t(prefill)}, 0)
                              : nullptr;
  int pos = prefill;
  stats.positions = pos;
  for (int p = 0; p < prefill && p < n_prompt - 1; p++) {
    if (tokenizer.is_end(tokens[p + 1])) {
      stats.total_ms = ms_since(t0);
      return stats;
    }
    print(tokens[p], tokens[p + 1]);
  }
  if (prefill < n_prompt) {
    stats.total_ms = ms_since(t0);
    return stats;
  }

  // Then one position at a time: sample from the last logits, print, feed the token back.
  std::chrono::steady_clock::time_point first;
  int token = tokens.back();
  while (true) {
    const int next = sampler.sample(logits);
    if (stats.generated_tokens++ == 0) {
      first = std::chrono::steady_clock::now();
      stats.first_token_ms = ms_since(t0);
    }
    if (tokenizer.is_end(next)) break;
    print(token, next);
    token = next;
    if (pos >= steps) break;
    logits = transformer.forward(token, pos++);
  }
  stats.positions = pos;
  stats.decode_ms = ms_since(first);
  stats.total_ms = ms_since(t0);
  return stats;
}

}  // namespace troupe
