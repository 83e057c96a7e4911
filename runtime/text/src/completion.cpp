#include "troupe/text/completion.hpp"

namespace troupe {

PreparedCompletion prepare_completion(const CompletionRequest& request, const Tokenizer& tokenizer,
                                      int seq_len) {
  PreparedCompletion p;
  p.steps = positions_to_run(request.steps, seq_len);
  p.options.max_tokens = request.max_tokens;
  p.options.stop = request.stop;
  if (request.messages.empty()) {
    p.prompt = tokenizer.encode(request.prompt, true, false);
    p.options.echo = request.echo && !request.chat;
    p.options.eos_ends = request.chat;
    return p;
  }
  const ChatTemplate t = choose_chat_template(tokenizer, request.chat_template);
  RenderedChat chat = render_chat(t, tokenizer, request.messages);
  p.prompt = std::move(chat.tokens);
  p.options.echo = false;  // a chat answer never repeats the conversation
  p.options.eos_ends = true;
  p.options.end_tokens = std::move(chat.end_of_turn);
  p.options.end_in_prompt = false;
  return p;
}

}  // namespace troupe
