// Chat templates: a conversation rendered into the prompt token ids a chat model was trained on.
//
// GGUF files carry their template as Jinja (tokenizer.chat_template). troupe does not run Jinja:
// it recognises the common families by their distinctive markers and renders them itself,
// straight to token ids, so that special tokens ("<|eot_id|>") become their ids and text a user
// writes can never turn into one.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "troupe/text/tokenizer.hpp"

namespace troupe {

struct ChatMessage {
  std::string role;  // system, user or assistant
  std::string content;
  bool operator==(const ChatMessage&) const = default;
};

enum class ChatTemplate {
  llama2,  // <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] answer </s> (also run.c's chat)
  llama3,  // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
  chatml,  // <|im_start|>role\n...<|im_end|>\n
  zephyr,  // <|user|>\n...</s>\n
};

const char* chat_template_name(ChatTemplate t);
// "llama2", "llama3", "chatml", "zephyr"; nullopt for anything else.
std::optional<ChatTemplate> chat_template_named(std::string_view name);
// The family of a Jinja template, by its markers; nullopt when none is recognised.
std::optional<ChatTemplate> recognize_chat_template(std::string_view jinja);
// `name` when given (InputError naming it when unknown), else the tokenizer's template when
// recognised, else llama2 (the llama2.c models' format, as `troupe run -m chat`).
ChatTemplate choose_chat_template(const Tokenizer& tokenizer, std::string_view name);

struct RenderedChat {
  std::vector<int> tokens;      // the prompt, ending where the assistant's answer begins
  std::vector<int> end_of_turn; // ids that end the assistant's answer
};

// Throws InputError for an unknown role, an empty conversation, one that does not end with a
// user (or system) message, or a vocabulary that lacks the template's special tokens.
RenderedChat render_chat(ChatTemplate t, const Tokenizer& tokenizer,
                         std::span<const ChatMessage> messages);

}  // namespace troupe
