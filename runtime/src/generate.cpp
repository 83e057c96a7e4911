#include "troupe/runtime/generate.hpp"

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
  if (static_cast<int>(tokens.size()) > seq_len) {
    throw InputError("prompt is " + std::to_string(tokens.size()) +
                     " tokens, longer than the model's context of " + std::to_string(seq_len));
  }
  GenerationStats stats;
  stats.prompt_tokens = static_cast<int>(tokens.size());
  const auto t0 = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point first;
  std::string text;
  int token = tokens[0];
  int pos = 0;
  while (pos < steps) {
    float* logits = transformer.forward(token, pos);
    int next;
    if (pos < stats.prompt_tokens - 1) {
      next = tokens[pos + 1];  // still reading the prompt: its next token is known
    } else {
      next = sampler.sample(logits);
      if (stats.generated_tokens++ == 0) {
        first = std::chrono::steady_clock::now();
        stats.first_token_ms = ms_since(t0);
      }
    }
    pos++;
    if (tokenizer.is_end(next)) break;
    text.clear();
    append_printable(text, tokenizer.decode(token, next));
    if (!text.empty()) emit(text);
    token = next;
  }
  stats.positions = pos;
  if (stats.generated_tokens > 0) stats.decode_ms = ms_since(first);
  stats.total_ms = ms_since(t0);
  return stats;
}

}  // namespace troupe
