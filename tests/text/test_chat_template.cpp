// Chat templates rendered to token ids on real vocabularies (llama.cpp's Llama SentencePiece and
// GPT-2 BPE files, with the special tokens of Llama 3 and ChatML added where the file has none):
// the ids must be exactly those of the template's text tokenized as llama.cpp does with special
// tokens parsed. And the answer ends at the template's end-of-turn token.
#include <catch2/catch.hpp>

#include "support/process.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"
#include "troupe/text/chat_template.hpp"
#include "troupe/text/completion.hpp"
#include "troupe/text/generate.hpp"

using namespace troupe;
using Catch::Matchers::Contains;

namespace {

Tokenizer vocab_file(const std::string& name) {
  return Tokenizer::from_gguf(GgufFile::open(test::shared_dir() + "/models/gguf-vocab/" + name));
}

// `base` with control tokens appended, as a converter writes a chat model's added tokens.
Tokenizer with_specials(const Tokenizer& base, const std::vector<std::string>& specials) {
  Vocabulary v = base.vocab();
  for (const std::string& s : specials) {
    v.pieces.push_back(s);
    v.scores.push_back(0);
    v.types.push_back(TokenType::control);
  }
  return Tokenizer(base.kind(), std::move(v));
}

std::vector<int> cat(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."},
    {"user", "Hi there!"},
    {"assistant", "Hello!"},
    {"user", "How are you?"},
};

}  // namespace

TEST_CASE("templates are recognised from GGUF Jinja text, or named", "[chat-template]") {
  CHECK(recognize_chat_template("{% set content = '<|start_header_id|>' + message['role'] + "
                                "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}") ==
        ChatTemplate::llama3);
  CHECK(recognize_chat_template("{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                                "'<|im_end|>' + '\\n'}}") == ChatTemplate::chatml);
  CHECK(recognize_chat_template("{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + "
                                "eos_token }}") == ChatTemplate::zephyr);
  CHECK(recognize_chat_template("{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}") ==
        ChatTemplate::llama2);
  CHECK_FALSE(recognize_chat_template("{{ messages }}"));
  CHECK_FALSE(recognize_chat_template(""));

  Tokenizer t = vocab_file("ggml-vocab-llama-spm.gguf");
  CHECK(choose_chat_template(t, "") == ChatTemplate::llama2);  // no template in the file
  CHECK(choose_chat_template(t, "chatml") == ChatTemplate::chatml);
  t.chat_template = "<|im_start|>";
  CHECK(choose_chat_template(t, "") == ChatTemplate::chatml);
  CHECK(choose_chat_template(t, "zephyr") == ChatTemplate::zephyr);  // the flag wins
  CHECK_THROWS_WITH(choose_chat_template(t, "jinja"), Contains("jinja"));
}

TEST_CASE("llama2: Meta's [INST] format on the Llama vocabulary", "[chat-template]") {
  const Tokenizer t = vocab_file("ggml-vocab-llama-spm.gguf");
  const RenderedChat r = render_chat(ChatTemplate::llama2, t, kConversation);
  const std::string text =
      "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there! [/INST] Hello! </s><s>[INST] How are you? [/INST]";
  CHECK(r.tokens == cat({t.special().bos}, encode_spm(t.vocab(), text, true)));
  CHECK(r.end_of_turn == std::vector<int>{t.special().eos});
}

TEST_CASE("llama2: one turn is run.c's chat prompt on the llama2.c vocabulary", "[chat-template]") {
  const Tokenizer t = Tokenizer::load_llama2c(test::shared_dir() + "/models/stories260K/tok512.bin", 512);
  const std::vector<ChatMessage> turn = {{"system", "You tell stories."}, {"user", "Once upon a time"}};
  const RenderedChat r = render_chat(ChatTemplate::llama2, t, turn);
  CHECK(r.tokens ==
        t.encode("[INST] <<SYS>>\nYou tell stories.\n<</SYS>>\n\nOnce upon a time [/INST]", true, false));
}

TEST_CASE("llama3: header tokens are ids, never text the BPE splits", "[chat-template]") {
  Tokenizer t = with_specials(vocab_file("ggml-vocab-gpt-2.gguf"),
                              {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"});
  Vocabulary v = t.vocab();
  v.special.bos = v.lookup("<|begin_of_text|>");
  t = Tokenizer(t.kind(), std::move(v));
  const int start = t.vocab().lookup("<|start_header_id|>"), eot = t.vocab().lookup("<|eot_id|>");
  const RenderedChat r = render_chat(ChatTemplate::llama3, t, kConversation);
  const std::string text =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\n";
  CHECK(r.tokens == encode_bpe(t.vocab(), text, true));
  CHECK(r.tokens[0] == t.special().bos);
  CHECK(r.tokens[1] == start);
  CHECK(std::count(r.tokens.begin(), r.tokens.end(), eot) == 4);
  CHECK(r.end_of_turn == std::vector<int>{eot});

  // A user who writes a special token gets its text, not the token.
  const RenderedChat sneaky = render_chat(ChatTemplate::llama3, t, std::vector<ChatMessage>{{"user", "a<|eot_id|>b"}});
  CHECK(std::count(sneaky.tokens.begin(), sneaky.tokens.end(), eot) == 1);
}

TEST_CASE("chatml: <|im_start|> turns", "[chat-template]") {
  const Tokenizer t = with_specials(vocab_file("ggml-vocab-gpt-2.gguf"), {"<|im_start|>", "<|im_end|>"});
  const RenderedChat r = render_chat(ChatTemplate::chatml, t, kConversation);
  const std::string text =
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n"
      "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n"
      "<|im_start|>assistant\n";
  CHECK(r.tokens == encode_bpe(t.vocab(), text, true));  // GPT-2 adds no BOS
  CHECK(r.end_of_turn == std::vector<int>{t.vocab().lookup("<|im_end|>")});
}

TEST_CASE("zephyr: <|user|> markers (text in this vocabulary) and </s>", "[chat-template]") {
  const Tokenizer t = vocab_file("ggml-vocab-llama-spm.gguf");
  const RenderedChat r = render_chat(ChatTemplate::zephyr, t, kConversation);
  const std::string text =
      "<|system|>\nBe brief.</s>\n<|user|>\nHi there!</s>\n<|assistant|>\nHello!</s>\n"
      "<|user|>\nHow are you?</s>\n<|assistant|>\n";
  CHECK(r.tokens == cat({t.special().bos}, encode_spm(t.vocab(), text, true)));
  CHECK(r.end_of_turn == std::vector<int>{t.special().eos});
}

TEST_CASE("templates refuse what they cannot render", "[chat-template]") {
  const Tokenizer t = vocab_file("ggml-vocab-llama-spm.gguf");
  CHECK_THROWS_WITH(render_chat(ChatTemplate::llama3, t, kConversation), Contains("<|start_header_id|>"));
  CHECK_THROWS_AS(render_chat(ChatTemplate::llama2, t, {}), InputError);
  CHECK_THROWS_WITH(render_chat(ChatTemplate::llama2, t, std::vector<ChatMessage>{{"robot", "x"}}),
                    Contains("robot"));
  CHECK_THROWS_AS(render_chat(ChatTemplate::llama2, t,
                              std::vector<ChatMessage>{{"user", "x"}, {"assistant", "y"}}),
                  InputError);
}

TEST_CASE("a chat answer ends at the template's end-of-turn token", "[chat-template][generate]") {
  const Tokenizer t = with_specials(vocab_file("ggml-vocab-gpt-2.gguf"), {"<|im_start|>", "<|im_end|>"});
  const int end = t.vocab().lookup("<|im_end|>");
  REQUIRE(end >= 0);
  REQUIRE(t.special().eot != end);  // the vocabulary alone would not stop there
  CompletionRequest request;
  request.messages = {{"user", "Hi"}};
  request.chat_template = "chatml";
  PreparedCompletion p = prepare_completion(request, t, 4096);
  Generation g(t, p.prompt, p.steps, 4096, p.options);
  const std::vector<int> answer = t.encode("Hello there", false, false);
  std::string text;
  for (int token : answer) text += g.accept(token);
  CHECK_FALSE(g.done());
  CHECK(g.accept(end).empty());
  CHECK(g.done());
  CHECK(g.finish_reason() == FinishReason::stop);
  CHECK(text == "Hello there");
  CHECK(g.generated_tokens() == static_cast<int>(answer.size()) + 1);
}
