#include "troupe/runtime/generate.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
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

SamplingSettings sampling_settings(float temperature, float topp, long long seed, int64_t now) {
  // run.c's clamping of out-of-range values, kept for drop-in compatibility.
  if (!std::isfinite(temperature)) throw InputError("-t: temperature must be a number");
  if (!std::isfinite(topp)) throw InputError("-p: top-p must be a number");
  SamplingSettings s;
  s.temperature = temperature < 0 ? 0 : temperature;
  s.topp = (topp < 0 || topp > 1) ? 0.9f : topp;
  // run.c reads the seed with atoi into an unsigned 64-bit value; 0 means "from the clock".
  s.seed = static_cast<uint64_t>(static_cast<int64_t>(seed));
  if (s.seed == 0) s.seed = static_cast<unsigned int>(now);
  return s;
}

int positions_to_run(int steps, int seq_len) {
  if (steps < 0) steps = 0;
  return (steps == 0 || steps > seq_len) ? seq_len : steps;
}

Generation::Generation(const Tokenizer& tokenizer, std::string_view prompt, int steps,
                       int seq_len, bool chat)
    : tokenizer_(tokenizer), chat_(chat), steps_(steps) {
  tokens_ = tokenizer.encode(prompt, true, false);
  if (tokens_.empty()) throw InputError("the prompt encodes to no tokens");
  if (static_cast<int>(tokens_.size()) > seq_len) {
    throw InputError("prompt is " + std::to_string(tokens_.size()) +
                     " tokens, longer than the model's context of " + std::to_string(seq_len));
  }
  if (steps < 1 || steps > seq_len) {
    throw InputError("steps " + std::to_string(steps) + " is outside 1.." + std::to_string(seq_len));
  }
  // The prompt runs as one batch of at most `steps` positions (as run.c counts them). run.c
  // prints each prompt piece as it goes and stops at an end token, even one inside the prompt;
  // when the text ends within the prompt nothing is sampled and nothing needs to run.
  const int n_prompt = static_cast<int>(tokens_.size());
  const int prefill = std::min(n_prompt, steps);
  for (int p = 0; p < prefill && p < n_prompt - 1; p++) {
    if (tokenizer.is_end(tokens_[p + 1])) {
      done_ = true;
      return;
    }
    if (!chat_) append_printable(prompt_text_, tokenizer.decode(tokens_[p], tokens_[p + 1]));
  }
  if (prefill < n_prompt) {
    done_ = true;
    return;
  }
  input_ = tokens_;
  position_ = 0;
  last_token_ = tokens_.back();
}

std::string Generation::accept(int token) {
  std::string text;
  if (done_) return text;
  positions_ = position_ + static_cast<int>(input_.size());
  generated_++;
  if (tokenizer_.is_end(token) || (chat_ && token == tokenizer_.special().eos)) {
    done_ = true;
    return text;
  }
  append_printable(text, tokenizer_.decode(last_token_, token));
  last_token_ = token;
  if (positions_ >= steps_) {
    done_ = true;
    return text;
  }
  input_.assign(1, token);
  position_ = positions_;
  return text;
}

GenerationStats generate(Transformer& transformer, const Tokenizer& tokenizer, Sampler& sampler,
                         std::string_view prompt, int steps,
                         const std::function<void(std::string_view)>& emit) {
  const auto t0 = std::chrono::steady_clock::now();
  Generation g(tokenizer, prompt, steps, transformer.config().seq_len);
  GenerationStats stats;
  stats.prompt_tokens = static_cast<int>(g.prompt_tokens().size());
  if (!g.prompt_text().empty()) emit(g.prompt_text());
  std::chrono::steady_clock::time_point first;
  while (!g.done()) {
    const auto in = g.input();
    float* logits = in.size() == 1 ? transformer.forward(in[0], g.position())
                                   : transformer.forward_batch(in, g.position());
    const std::string text = g.accept(sampler.sample(logits));
    if (g.generated_tokens() == 1) {
      first = std::chrono::steady_clock::now();
      stats.first_token_ms = ms_since(t0);
    }
    if (!text.empty()) emit(text);
  }
  stats.generated_tokens = g.generated_tokens();
  stats.positions = g.positions();
  if (stats.generated_tokens > 0) stats.decode_ms = ms_since(first);
  stats.total_ms = ms_since(t0);
  return stats;
}

}  // namespace troupe
