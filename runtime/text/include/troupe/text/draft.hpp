// Draft tokens for exact speculative decoding: guesses of the next tokens that the model then
// checks in one batch (generate.hpp: Speculation). A wrong guess costs a row of compute, never a
// different text: every emitted token is still the one the sampler draws from the model's logits.
#pragma once

#include <functional>
#include <span>
#include <vector>

namespace troupe {

// Prompt lookup: the tokens that followed the latest earlier occurrence of the context's last n
// tokens (n = max_ngram down to 1) that k tokens follow, or else the latest one; at most k. Stories, code and chats repeat names and phrases,
// so this guesses well where the text repeats itself, for no model and no memory. Empty when the
// last tokens never occurred before.
std::vector<int> lookup_drafts(std::span<const int> context, int k, int max_ngram = 3);

// A source of drafts: (the context so far, at most how many) -> the guesses.
using DraftSource = std::function<std::vector<int>(std::span<const int> context, int k)>;

}  // namespace troupe
