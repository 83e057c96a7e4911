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

#include "troupe/runtime/sampler.hpp"
#include "troupe/runtime/tokenizer.hpp"
#include "troupe/runtime/transformer.hpp"

namespace troupe {

struct GenerationStats {
  int prompt_tokens = 0;
  int generated_tokens = 0;     // tokens sampled by the model
  int positions = 0;            // forward passes run
  double first_token_ms = 0;    // start to the first sampled token (the prompt included)
  double decode_ms = 0;         // first sampled token to the last one
  double total_ms = 0;
  double decode_tokens_per_s() const;
  double prompt_tokens_per_s() const;
};

// The sampler's flags as `troupe run` takes them, after run.c's clamping: a negative temperature
// is 0, a top-p outside [0, 1] is 0.9, seed 0 means "from the clock" (`now` is the caller's
// clock reading, in seconds). Throws InputError for a temperature or top-p that is not a number.
struct SamplingSettings {
  float temperature = 1.0f;
  float topp = 0.9f;
  uint64_t seed = 0;
};
SamplingSettings sampling_settings(float temperature, float topp, long long seed, int64_t now);
// -n as run.c reads it: 0 (or more than the context) is the model's seq_len; negative is 0.
int positions_to_run(int steps, int seq_len);

class Generation {
 public:
  // Tokenizes `prompt` (with BOS). `steps` counts positions from the start, prompt included
  // (1..seq_len). In chat mode the prompt is not echoed and EOS also ends the reply (run.c's chat
  // loop). Throws InputError when the prompt does not fit in the model's context.
  Generation(const Tokenizer& tokenizer, std::string_view prompt, int steps, int seq_len,
             bool chat = false);

  // What run.c prints of the prompt, before anything is sampled (empty in chat mode).
  const std::string& prompt_text() const { return prompt_text_; }
  const std::vector<int>& prompt_tokens() const { return tokens_; }
  int steps() const { return steps_; }

  // Whether the text is complete. Until then: run input() at positions position().. and call
  // accept() with the token sampled from the logits of its last position.
  bool done() const { return done_; }
  std::span<const int> input() const { return input_; }
  int position() const { return position_; }

  // Takes the sampled token; returns its printable text (possibly empty) and moves on.
  std::string accept(int token);

  int generated_tokens() const { return generated_; }
  // Positions run so far (the last input() included once accept() was called for it).
  int positions() const { return positions_; }

 private:
  const Tokenizer& tokenizer_;
  bool chat_;
  int steps_;
  std::vector<int> tokens_;
  std::string prompt_text_;
  std::vector<int> input_;
  int position_ = 0;
  int positions_ = 0;
  int last_token_ = 0;
  int generated_ = 0;
  bool done_ = false;
};

// Throws InputError when the prompt does not fit in the model's context.
GenerationStats generate(Transformer& transformer, const Tokenizer& tokenizer, Sampler& sampler,
                         std::string_view prompt, int steps,
                         const std::function<void(std::string_view)>& emit);

}  // namespace troupe
