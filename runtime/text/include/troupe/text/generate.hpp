// run.c's generation loop: feed the prompt, then sample until the model's end token (BOS for
// llama2.c models) or `steps` positions, handing each printable piece to the caller as it comes.
//
// The loop's decisions live in Generation, a state machine without a forward pass: it says which
// positions to run next and turns each sampled token into text. generate() drives it with one
// local Transformer (`troupe run`); a mesh session drives the same machine with the positions run
// by pipeline stages on other devices, so both print the same bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "troupe/model/transformer.hpp"
#include "troupe/text/draft.hpp"
#include "troupe/text/sampler.hpp"
#include "troupe/text/tokenizer.hpp"

namespace troupe {

struct GenerationStats {
  int prompt_tokens = 0;
  int generated_tokens = 0;     // tokens sampled by the model
  int positions = 0;            // forward passes run
  double first_token_ms = 0;    // start to the first sampled token (the prompt included)
  double decode_ms = 0;         // first sampled token to the last one
  double total_ms = 0;
  int drafted = 0;              // guesses checked (speculation)
  int accepted = 0;             // guesses the sampler drew
  double decode_tokens_per_s() const;
  double prompt_tokens_per_s() const;
};

// The sampler's flags as `troupe run` takes them, after run.c's clamping: a negative temperature
// is 0, a top-p outside [0, 1] is 0.9, seed 0 means a seed of its own: `fresh_seed`, which the
// caller draws from an entropy source (run.c reads the clock, so that two runs in one second
// write the same text). Throws InputError for a temperature or top-p that is not a number.
struct SamplingSettings {
  float temperature = 1.0f;
  float topp = 0.9f;
  uint64_t seed = 0;
};
SamplingSettings sampling_settings(float temperature, float topp, long long seed, uint64_t fresh_seed);
// -n as run.c reads it: 0 (or more than the context) is the model's seq_len; negative is 0.
int positions_to_run(int steps, int seq_len);

// How a text ends and what of it is shown, beyond run.c's rules (the HTTP API and chat templates).
struct GenerationOptions {
  bool echo = true;       // the prompt's text comes first (run.c's generate mode)
  bool eos_ends = false;  // EOS ends the text too, not only the tokenizer's end tokens (chat)
  std::vector<int> end_tokens;  // more ids that end the text (a chat template's end of turn)
  int max_tokens = 0;     // sampled tokens at most; 0: as many as `steps` allows
  // The text ends just before the first of these; what could still become one is held back
  // until it cannot. Empty strings are ignored.
  std::vector<std::string> stop;
  // run.c ends the text at an end token even inside the prompt; a rendered chat template holds
  // end-of-turn tokens between its turns by design, so there they must not end anything.
  bool end_in_prompt = true;
};

// Why a text ended, in the OpenAI API's words: "stop" (an end token or a stop string) or
// "length" (max_tokens or the positions ran out).
enum class FinishReason { none, stop, length };
const char* finish_reason_name(FinishReason reason);

class Generation {
 public:
  // Tokenizes `prompt` (with BOS). `steps` counts positions from the start, prompt included
  // (1..seq_len). In chat mode the prompt is not echoed and EOS also ends the reply (run.c's chat
  // loop). Throws InputError when the prompt does not fit in the model's context.
  Generation(const Tokenizer& tokenizer, std::string_view prompt, int steps, int seq_len,
             bool chat = false);
  // A prompt already in token ids (a rendered chat template, BOS included where it belongs).
  // Throws InputError when it is empty, does not fit in the context, or when the prompt and
  // max_tokens together are over the context.
  Generation(const Tokenizer& tokenizer, std::vector<int> prompt_tokens, int steps, int seq_len,
             GenerationOptions options);

  // What run.c prints of the prompt, before anything is sampled (empty in chat mode).
  const std::string& prompt_text() const { return prompt_text_; }
  const std::vector<int>& prompt_tokens() const { return tokens_; }
  int steps() const { return steps_; }

  // Whether the text is complete. Until then: run input() at positions position().. and call
  // accept() with the token sampled from the logits of its last position.
  bool done() const { return done_; }
  std::span<const int> input() const { return input_; }
  int position() const { return position_; }

  // Takes the sampled token; returns its printable text (possibly empty) and moves on. A token
  // outside the vocabulary is an InputError and changes nothing.
  std::string accept(int token);

  int generated_tokens() const { return generated_; }
  FinishReason finish_reason() const { return finish_; }
  // Positions run so far (the last input() included once accept() was called for it).
  int positions() const { return positions_; }

 private:
  bool ends_text(int token) const;
  // Text that may be shown now, given the stop strings; ends the generation at one.
  std::string release(std::string_view piece);
  std::string finish(FinishReason reason);  // ends it; returns the text held back

  const Tokenizer& tokenizer_;
  GenerationOptions options_;
  int steps_;
  std::string held_;  // text that could be the start of a stop string
  FinishReason finish_ = FinishReason::none;
  std::vector<int> tokens_;
  std::string prompt_text_;
  std::vector<int> input_;
  int position_ = 0;
  int positions_ = 0;
  int last_token_ = 0;
  int generated_ = 0;
  bool done_ = false;
};

// Exact speculative decoding: each step runs its token and up to `draft_tokens` guesses from
// `drafts` as one batch, then emits tokens while the sampler draws the guess that was run after
// them. The sampler draws once for each emitted token, in order, as without guesses, so the text
// is the same for greedy and for seeded sampling; a wrong guess costs its row, and the cache
// rows past it are written again (a cache row is read only by positions after it).
struct Speculation {
  int draft_tokens = 0;  // 0: off
  DraftSource drafts;
};

// Throws InputError when the prompt does not fit in the model's context.
GenerationStats generate(Transformer& transformer, const Tokenizer& tokenizer, Sampler& sampler,
                         std::string_view prompt, int steps,
                         const std::function<void(std::string_view)>& emit, const Speculation& speculation = {});

}  // namespace troupe
