// run.c's generation loop: feed the prompt, then sample until the model's end token (BOS for
// llama2.c models) or `steps` positions, handing each printable piece to the caller as it comes.
#pragma once

#include <functional>
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

// Throws InputError when the prompt does not fit in the model's context.
GenerationStats generate(Transformer& transformer, const Tokenizer& tokenizer, Sampler& sampler,
                         std::string_view prompt, int steps,
                         const std::function<void(std::string_view)>& emit);

}  // namespace troupe
