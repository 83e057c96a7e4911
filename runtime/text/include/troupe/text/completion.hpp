// What an entry node runs for a client's generate request: the prompt in token ids (the text
// tokenized as run.c does, or a conversation rendered with a chat template) and the rules that
// end the text. Shared by the mesh session and the tests.
#pragma once

#include <string>
#include <vector>

#include "troupe/text/chat_template.hpp"
#include "troupe/text/generate.hpp"

namespace troupe {

// A completion as a client asks for it (the wire's generate request carries one, with its
// sampler settings).
struct CompletionRequest {
  std::string prompt;
  int steps = 0;      // as -n: 0 = the model's context
  bool chat = false;  // chat turn: the prompt is not echoed and EOS ends the reply
  int max_tokens = 0;              // sampled tokens at most; 0 = no cap beyond `steps`
  bool echo = true;                // the prompt's text comes first (when not chat)
  std::vector<std::string> stop;   // the text ends before the first of these
  // When not empty: a conversation that the entry node renders with a chat template (the
  // prompt is then unused), ending in the assistant's turn.
  std::vector<ChatMessage> messages;
  std::string chat_template;       // its name; empty = the one the entry node's model names
};

struct PreparedCompletion {
  std::vector<int> prompt;
  int steps = 0;  // positions, prompt included
  GenerationOptions options;
};

// Throws InputError for a request the model cannot run (unknown template, bad conversation).
PreparedCompletion prepare_completion(const CompletionRequest& request, const Tokenizer& tokenizer,
                                      int seq_len);

}  // namespace troupe
