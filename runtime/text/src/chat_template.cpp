#include "troupe/text/chat_template.hpp"

#include <array>

#include "troupe/model/error.hpp"

namespace troupe {

namespace {

constexpr std::array<std::pair<ChatTemplate, const char*>, 4> kNames = {{
    {ChatTemplate::llama2, "llama2"},
    {ChatTemplate::llama3, "llama3"},
    {ChatTemplate::chatml, "chatml"},
    {ChatTemplate::zephyr, "zephyr"},
}};

// Builds the token ids: plain text is buffered and encoded in one piece up to the next special
// token, because that is how llama.cpp tokenizes a rendered template (a SentencePiece space
// prefix goes before each stretch of text that follows a special token, not before every part).
class Builder {
 public:
  explicit Builder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  void text(std::string_view s) { pending_ += s; }
  void token(int id) {
    flush();
    tokens_.push_back(id);
  }
  // A special token the template cannot do without.
  int special(std::string_view piece, ChatTemplate t) const {
    const int id = tokenizer_.vocab().lookup(piece);
    if (id < 0) {
      throw InputError(std::string("chat template ") + chat_template_name(t) + " needs the token " +
                       std::string(piece) + ", which the model's vocabulary does not have");
    }
    return id;
  }
  // A marker that is a token in some vocabularies and plain text in others (Zephyr's <|user|>).
  void marker(std::string_view piece) {
    const int id = tokenizer_.vocab().lookup(piece);
    const auto& types = tokenizer_.vocab().types;
    if (id >= 0 && id < static_cast<int>(types.size()) &&
        (types[id] == TokenType::control || types[id] == TokenType::user_defined)) {
      token(id);
    } else {
      text(piece);
    }
  }
  void bos_if_added() {
    const SpecialTokens& s = tokenizer_.special();
    if (s.add_bos && s.bos >= 0) token(s.bos);
  }
  std::vector<int> take() {
    flush();
    return std::move(tokens_);
  }

 private:
  void flush() {
    if (pending_.empty()) return;
    const std::vector<int> ids = tokenizer_.encode(pending_, false, false);
    tokens_.insert(tokens_.end(), ids.begin(), ids.end());
    pending_.clear();
  }

  const Tokenizer& tokenizer_;
  std::string pending_;
  std::vector<int> tokens_;
};

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\n\r");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\n\r");
  return s.substr(first, last - first + 1);
}

void check_conversation(std::span<const ChatMessage> messages) {
  if (messages.empty()) throw InputError("the conversation has no messages");
  for (const ChatMessage& m : messages) {
    if (m.role != "system" && m.role != "user" && m.role != "assistant") {
      throw InputError("chat message role '" + m.role + "': expected system, user or assistant");
    }
  }
  if (messages.back().role == "assistant") {
    throw InputError("the conversation ends with an assistant message; the last must be the user's");
  }
}

// Meta's Llama 2 chat format: each exchange is "<s>[INST] user [/INST] answer </s>", a system
// prompt goes inside the first [INST] in <<SYS>> tags. A single user turn renders exactly as
// run.c's chat mode does.
RenderedChat llama2(const Tokenizer& tokenizer, std::span<const ChatMessage> messages) {
  Builder b(tokenizer);
  const int bos = tokenizer.special().bos, eos = tokenizer.special().eos;
  std::string system;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      system = m.content;
    } else if (m.role == "user") {
      if (bos >= 0) b.token(bos);
      b.text("[INST] ");
      if (!system.empty()) b.text("<<SYS>>\n" + system + "\n<</SYS>>\n\n");
      system.clear();
      b.text(m.content);
      b.text(" [/INST]");
    } else {
      b.text(" ");
      b.text(trim(m.content));
      b.text(" ");
      if (eos >= 0) b.token(eos);
    }
  }
  RenderedChat r{b.take(), {}};
  if (eos >= 0) r.end_of_turn.push_back(eos);
  return r;
}

RenderedChat llama3(const Tokenizer& tokenizer, std::span<const ChatMessage> messages) {
  Builder b(tokenizer);
  const int start = b.special("<|start_header_id|>", ChatTemplate::llama3);
  const int end = b.special("<|end_header_id|>", ChatTemplate::llama3);
  const int eot = b.special("<|eot_id|>", ChatTemplate::llama3);
  if (tokenizer.special().bos >= 0) b.token(tokenizer.special().bos);  // {{ bos_token }}
  for (const ChatMessage& m : messages) {
    b.token(start);
    b.text(m.role);
    b.token(end);
    b.text("\n\n");
    b.text(trim(m.content));
    b.token(eot);
  }
  b.token(start);
  b.text("assistant");
  b.token(end);
  b.text("\n\n");
  return {b.take(), {eot}};
}

RenderedChat chatml(const Tokenizer& tokenizer, std::span<const ChatMessage> messages) {
  Builder b(tokenizer);
  const int start = b.special("<|im_start|>", ChatTemplate::chatml);
  const int end = b.special("<|im_end|>", ChatTemplate::chatml);
  b.bos_if_added();
  for (const ChatMessage& m : messages) {
    b.token(start);
    b.text(m.role + "\n" + m.content);
    b.token(end);
    b.text("\n");
  }
  b.token(start);
  b.text("assistant\n");
  return {b.take(), {end}};
}

RenderedChat zephyr(const Tokenizer& tokenizer, std::span<const ChatMessage> messages) {
  Builder b(tokenizer);
  const int eos = tokenizer.special().eos;
  if (eos < 0) throw InputError("chat template zephyr needs an end-of-sequence token");
  b.bos_if_added();
  for (const ChatMessage& m : messages) {
    b.marker("<|" + m.role + "|>");
    b.text("\n" + m.content);
    b.token(eos);
    b.text("\n");
  }
  b.marker("<|assistant|>");
  b.text("\n");
  return {b.take(), {eos}};
}

}  // namespace

const char* chat_template_name(ChatTemplate t) {
  for (const auto& [kind, name] : kNames) {
    if (kind == t) return name;
  }
  return "?";
}

std::optional<ChatTemplate> chat_template_named(std::string_view name) {
  for (const auto& [kind, n] : kNames) {
    if (name == n) return kind;
  }
  return std::nullopt;
}

std::optional<ChatTemplate> recognize_chat_template(std::string_view jinja) {
  // Most specific first: a Llama 3 or ChatML template may mention [INST] in a comment, never the
  // other way round.
  if (jinja.find("<|start_header_id|>") != std::string_view::npos) return ChatTemplate::llama3;
  if (jinja.find("<|im_start|>") != std::string_view::npos) return ChatTemplate::chatml;
  if (jinja.find("<|user|>") != std::string_view::npos) return ChatTemplate::zephyr;
  if (jinja.find("[INST]") != std::string_view::npos) return ChatTemplate::llama2;
  return std::nullopt;
}

ChatTemplate choose_chat_template(const Tokenizer& tokenizer, std::string_view name) {
  if (!name.empty()) {
    if (auto t = chat_template_named(name)) return *t;
    throw InputError("chat template '" + std::string(name) +
                     "' is not one troupe knows: llama2, llama3, chatml or zephyr");
  }
  return recognize_chat_template(tokenizer.chat_template).value_or(ChatTemplate::llama2);
}

RenderedChat render_chat(ChatTemplate t, const Tokenizer& tokenizer,
                         std::span<const ChatMessage> messages) {
  check_conversation(messages);
  switch (t) {
    case ChatTemplate::llama2: return llama2(tokenizer, messages);
    case ChatTemplate::llama3: return llama3(tokenizer, messages);
    case ChatTemplate::chatml: return chatml(tokenizer, messages);
    case ChatTemplate::zephyr: return zephyr(tokenizer, messages);
  }
  throw InputError("unknown chat template");
}

}  // namespace troupe
