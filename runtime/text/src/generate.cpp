#include "troupe/text/generate.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <utility>

#include "troupe/model/error.hpp"

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

SamplingSettings sampling_settings(float temperature, float topp, long long seed, uint64_t fresh_seed) {
  // run.c's clamping of out-of-range values, kept for drop-in compatibility.
  if (!std::isfinite(temperature)) throw InputError("-t: temperature must be a number");
  if (!std::isfinite(topp)) throw InputError("-p: top-p must be a number");
  SamplingSettings s;
  s.temperature = temperature < 0 ? 0 : temperature;
  s.topp = (topp < 0 || topp > 1) ? 0.9f : topp;
  // run.c reads the seed with atoi into an unsigned 64-bit value; 0 means a seed of its own.
  s.seed = static_cast<uint64_t>(static_cast<int64_t>(seed));
  if (s.seed == 0) s.seed = fresh_seed == 0 ? 1 : fresh_seed;  // 0 would stop the xorshift
  return s;
}

int positions_to_run(int steps, int seq_len) {
  if (steps < 0) steps = 0;
  return (steps == 0 || steps > seq_len) ? seq_len : steps;
}

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::none: return "";
  }
  return "";
}

namespace {
// run.c's two modes: generate echoes the prompt; chat does not, and EOS ends its reply.
GenerationOptions run_options(bool chat) {
  GenerationOptions o;
  o.echo = !chat;
  o.eos_ends = chat;
  return o;
}
}  // namespace

Generation::Generation(const Tokenizer& tokenizer, std::string_view prompt, int steps,
                       int seq_len, bool chat)
    : Generation(tokenizer, tokenizer.encode(prompt, true, false), steps, seq_len,
                 run_options(chat)) {}

Generation::Generation(const Tokenizer& tokenizer, std::vector<int> prompt_tokens, int steps,
                       int seq_len, GenerationOptions options)
    : tokenizer_(tokenizer), options_(std::move(options)), steps_(steps), tokens_(std::move(prompt_tokens)) {
  std::erase(options_.stop, std::string());
  if (tokens_.empty()) throw InputError("the prompt encodes to no tokens");
  const int n_prompt = static_cast<int>(tokens_.size());
  if (n_prompt > seq_len) {
    throw InputError("prompt is " + std::to_string(tokens_.size()) +
                     " tokens, longer than the model's context of " + std::to_string(seq_len));
  }
  if (steps < 1 || steps > seq_len) {
    throw InputError("steps " + std::to_string(steps) + " is outside 1.." + std::to_string(seq_len));
  }
  if (options_.max_tokens < 0) throw InputError("max_tokens must not be negative");
  // As the OpenAI API counts: the prompt and the tokens asked for must fit in the context.
  if (options_.max_tokens > seq_len - n_prompt) {
    throw InputError("the model's context is " + std::to_string(seq_len) + " tokens, but " +
                     std::to_string(n_prompt) + " in the prompt and max_tokens " +
                     std::to_string(options_.max_tokens) + " ask for " +
                     std::to_string(n_prompt + options_.max_tokens));
  }
  // The prompt runs as one batch of at most `steps` positions (as run.c counts them). run.c
  // prints each prompt piece as it goes and stops at an end token, even one inside the prompt;
  // when the text ends within the prompt nothing is sampled and nothing needs to run.
  const int prefill = std::min(n_prompt, steps);
  for (int p = 0; p < prefill && p < n_prompt - 1; p++) {
    if (options_.end_in_prompt && tokenizer.is_end(tokens_[p + 1])) {
      finish(FinishReason::stop);
      return;
    }
    if (options_.echo) append_printable(prompt_text_, tokenizer.decode(tokens_[p], tokens_[p + 1]));
  }
  if (prefill < n_prompt) {
    finish(FinishReason::length);
    return;
  }
  input_ = tokens_;
  position_ = 0;
  last_token_ = tokens_.back();
}

bool Generation::ends_text(int token) const {
  if (tokenizer_.is_end(token)) return true;
  if (options_.eos_ends && token == tokenizer_.special().eos) return true;
  const auto& extra = options_.end_tokens;
  return std::find(extra.begin(), extra.end(), token) != extra.end();
}

std::string Generation::finish(FinishReason reason) {
  done_ = true;
  finish_ = reason;
  return std::exchange(held_, {});
}

std::string Generation::release(std::string_view piece) {
  held_.append(piece);
  if (options_.stop.empty()) return std::exchange(held_, {});
  std::size_t cut = std::string::npos;
  for (const std::string& s : options_.stop) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    held_.resize(cut);
    return finish(FinishReason::stop);
  }
  // Hold back the longest tail that a later piece could complete into a stop string.
  std::size_t keep = 0;
  for (const std::string& s : options_.stop) {
    for (std::size_t k = std::min(s.size() - 1, held_.size()); k > keep; k--) {
      if (std::string_view(held_).substr(held_.size() - k) == std::string_view(s).substr(0, k)) {
        keep = k;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string Generation::accept(int token) {
  std::string text;
  if (done_) return text;
  if (token < 0 || token >= tokenizer_.vocab_size()) {  // before any state changes
    throw InputError("sampled token " + std::to_string(token) + " is outside the vocabulary of " +
                     std::to_string(tokenizer_.vocab_size()));
  }
  positions_ = position_ + static_cast<int>(input_.size());
  generated_++;
  if (ends_text(token)) return finish(FinishReason::stop);
  append_printable(text, tokenizer_.decode(last_token_, token));
  last_token_ = token;
  text = release(text);
  if (done_) return text;
  if (positions_ >= steps_ || (options_.max_tokens > 0 && generated_ >= options_.max_tokens)) {
    return text + finish(FinishReason::length);
  }
  input_.assign(1, token);
  position_ = positions_;
  return text;
}

namespace {

// The rows of one step: its input, and the guesses that fit after it.
std::vector<int> step_rows(const Generation& g, const std::vector<int>& context, const Speculation& speculation) {
  const auto in = g.input();
  std::vector<int> rows(in.begin(), in.end());
  const int room = std::min({speculation.draft_tokens, g.steps() - g.position() - 1, Transformer::kMaxEach - 1});
  if (in.size() != 1 || room <= 0 || !speculation.drafts) return rows;
  std::vector<int> guesses = speculation.drafts(context, room);
  guesses.resize(std::min(guesses.size(), std::size_t(room)));
  rows.insert(rows.end(), guesses.begin(), guesses.end());
  return rows;
}

}  // namespace

GenerationStats generate(Transformer& transformer, const Tokenizer& tokenizer, Sampler& sampler,
                         std::string_view prompt, int steps,
                         const std::function<void(std::string_view)>& emit, const Speculation& speculation) {
  const auto t0 = std::chrono::steady_clock::now();
  Generation g(tokenizer, prompt, steps, transformer.config().seq_len);
  GenerationStats stats;
  stats.prompt_tokens = static_cast<int>(g.prompt_tokens().size());
  if (!g.prompt_text().empty()) emit(g.prompt_text());
  std::chrono::steady_clock::time_point first;
  std::vector<int> context = g.prompt_tokens();  // what the guesses look up
  const int vocab = transformer.config().vocab_size;
  while (!g.done()) {
    const std::vector<int> rows = step_rows(g, context, speculation);
    const int pos = g.position();
    float* logits = rows.size() == 1  ? transformer.forward(rows[0], pos)
                    : g.input().size() > 1 ? transformer.forward_batch(rows, pos)
                                           : transformer.forward_each(rows, pos);
    const bool guessed = g.input().size() == 1 && rows.size() > 1;
    stats.drafted += guessed ? static_cast<int>(rows.size()) - 1 : 0;
    for (std::size_t i = 0; !g.done(); i++) {
      const int token = sampler.sample(logits + (guessed ? i * std::size_t(vocab) : 0));
      const std::string text = g.accept(token);
      context.push_back(token);
      if (g.generated_tokens() == 1) {
        first = std::chrono::steady_clock::now();
        stats.first_token_ms = ms_since(t0);
      }
      if (!text.empty()) emit(text);
      // The next row was run on the guess: its logits are the next step's when the guess holds.
      if (!guessed || i + 1 == rows.size() || token != rows[i + 1]) break;
      stats.accepted++;
    }
  }
  stats.generated_tokens = g.generated_tokens();
  stats.positions = g.positions();
  if (stats.generated_tokens > 0) stats.decode_ms = ms_since(first);
  stats.total_ms = ms_since(t0);
  return stats;
}

}  // namespace troupe
