// What an entry node runs for a client's generate request: the prompt in token ids (the text
// tokenized as run.c does, or a conversation rendered with a chat template) and the rules that
// end the text. Shared by the mesh session and the tests.
#pragma once

#include <vector>

#include "troupe/runtime/generate.hpp"
#include "troupe/runtime/wire.hpp"

namespace troupe {

struct PreparedCompletion {
  std::vector<int> prompt;
  int steps = 0;  // positions, prompt included
  GenerationOptions options;
};

// Throws InputError for a request the model cannot run (unknown template, bad conversation).
PreparedCompletion prepare_completion(const wire::GenerateRequest& request, const Tokenizer& tokenizer,
                                      int seq_len);

}  // namespace troupe
