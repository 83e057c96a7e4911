// The OpenAI request checks and answer shapes (cli/openai_api), and the ends of a text that the
// API adds to run.c's loop: stop strings, max_tokens, finish reasons.
#include <catch2/catch.hpp>

#include "openai_api.hpp"
#include "support/process.hpp"
#include "troupe/model/error.hpp"
#include "troupe/text/generate.hpp"

using namespace troupe;
using namespace troupe::cli::openai;
using nlohmann::json;

namespace {

const ModelInfo kModel{"stories260K", 512, ""};

ParsedRequest ok(Endpoint e, const json& body) {
  auto r = parse_request(e, body.dump(), kModel, 1000);
  if (auto* err = std::get_if<ApiError>(&r)) FAIL(err->message);
  return std::get<ParsedRequest>(r);
}

ApiError bad(Endpoint e, const std::string& body) {
  auto r = parse_request(e, body, kModel, 1000);
  REQUIRE(std::holds_alternative<ApiError>(r));
  return std::get<ApiError>(r);
}

const Tokenizer& stories_tokenizer() {
  static const Tokenizer t =
      Tokenizer::load_llama2c(test::shared_dir() + "/models/stories260K/tok512.bin", 512);
  return t;
}

// Feeds the tokens of `text` (which starts with a space: the llama2.c tokenizer's dummy prefix)
// to a Generation as if sampled; returns everything it let out.
std::string run_tokens(Generation& g, const std::string& text) {
  std::string out;
  for (int token : stories_tokenizer().encode(text.substr(1), false, false)) {
    out += g.accept(token);
    if (g.done()) break;
  }
  return out;
}

}  // namespace

TEST_CASE("completion requests become mesh requests", "[openai]") {
  const ParsedRequest p = ok(Endpoint::completions, {{"model", "stories260K"}, {"prompt", "Hi"},
                                                     {"max_tokens", 20}, {"temperature", 0.5},
                                                     {"top_p", 0.8}, {"seed", 7}, {"stop", "x"}});
  CHECK(p.request.prompt == "Hi");
  CHECK(p.request.max_tokens == 20);
  CHECK(p.request.sampling.temperature == 0.5f);
  CHECK(p.request.sampling.topp == 0.8f);
  CHECK(p.request.sampling.seed == 7);
  CHECK(p.request.stop == std::vector<std::string>{"x"});
  CHECK_FALSE(p.request.echo);
  CHECK_FALSE(p.stream);
  // Defaults: OpenAI's temperature and top_p, the clock's seed, no cap.
  const ParsedRequest d = ok(Endpoint::completions, {{"prompt", {"Hi"}}, {"stream", true}});
  CHECK(d.request.sampling.temperature == 1.0f);
  CHECK(d.request.sampling.topp == 1.0f);
  CHECK(d.request.sampling.seed == 1000);
  CHECK(d.request.max_tokens == 0);
  CHECK(d.stream);
}

TEST_CASE("chat requests carry the conversation", "[openai]") {
  const ParsedRequest p = ok(Endpoint::chat,
                             {{"messages", {{{"role", "system"}, {"content", "S"}},
                                            {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "U"}}}}}}},
                              {"max_completion_tokens", 3}});
  REQUIRE(p.request.messages.size() == 2);
  CHECK(p.request.messages[1] == ChatMessage{"user", "U"});
  CHECK(p.request.chat);
  CHECK(p.request.max_tokens == 3);
}

TEST_CASE("bad requests name the field at fault", "[openai]") {
  CHECK(bad(Endpoint::completions, "{").message.find("JSON") != std::string::npos);
  CHECK(bad(Endpoint::completions, R"({"prompt": "x", "top_p": 2})").param == "top_p");
  CHECK(bad(Endpoint::completions, R"({"prompt": "x", "seed": "1"})").param == "seed");
  CHECK(bad(Endpoint::completions, R"({"prompt": "x", "n": 2})").param == "n");
  CHECK(bad(Endpoint::completions, R"({"prompt": "x", "max_tokens": 0})").param == "max_tokens");
  CHECK(bad(Endpoint::completions, R"({"prompt": "x", "stop": ""})").param == "stop");
  CHECK(bad(Endpoint::chat, R"({"messages": []})").param == "messages");
  CHECK(bad(Endpoint::chat, R"({"messages": [{"role": "user"}]})").param == "messages[0].content");
  CHECK(bad(Endpoint::chat, R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})")
            .param == "messages");
  const ApiError model = bad(Endpoint::completions, R"({"model": "x", "prompt": "y"})");
  CHECK(model.http_status == 404);
  CHECK(model.to_json() == json::parse(R"({"error": {"message": ")" + model.message +
                                       R"(", "type": "invalid_request_error", "param": "model", "code": "model_not_found"}})"));
}

TEST_CASE("UTF-8 characters split across tokens are joined before they go out", "[openai]") {
  Utf8Joiner j;
  CHECK(j.take("a\xE2\x9C") == "a");
  CHECK(j.take("\x93") == "\xE2\x9C\x93");
  CHECK(j.take("\xF0\x9F") == "");
  CHECK(j.take("\x98\x80!") == "\xF0\x9F\x98\x80!");
  CHECK(j.take("\xC3") == "");
  CHECK(j.finish() == "\xC3");
  // Invalid UTF-8 is replaced in the JSON, not thrown.
  CHECK(sse_event(json{{"t", "\xC3"}}) == "data: {\"t\":\"\xEF\xBF\xBD\"}\n\n");
}

TEST_CASE("stop strings end the text before them, even across tokens", "[generate][openai]") {
  const Tokenizer& t = stories_tokenizer();
  const std::string story = " there was a little girl named Lily. She loved to play";
  for (const std::string stop : {"Lily", "ly. S", "e was", "y"}) {
    GenerationOptions o;
    o.echo = false;
    o.stop = {"never", stop};
    Generation g(t, t.encode("Once", true, false), 256, 512, o);
    const std::string out = run_tokens(g, story);
    INFO("stop '" << stop << "'");
    CHECK(out == story.substr(0, story.find(stop)));
    CHECK(g.done());
    CHECK(g.finish_reason() == FinishReason::stop);
  }
  // Text held back as a possible start of a stop string comes out when it is not one.
  GenerationOptions o;
  o.stop = {"Lily!"};
  Generation g(t, t.encode("Once", true, false), 256, 512, o);
  const std::string named = " there was a little girl named Lily";
  std::string out = run_tokens(g, named);
  CHECK(out == " there was a little girl named ");  // "Lily" could still become "Lily!"
  out += g.accept(t.special().bos);
  CHECK(out == named);
  CHECK(g.finish_reason() == FinishReason::stop);
}

TEST_CASE("max_tokens ends the text with finish reason length", "[generate][openai]") {
  const Tokenizer& t = stories_tokenizer();
  GenerationOptions o;
  o.max_tokens = 3;
  Generation g(t, t.encode("Once", true, false), 256, 512, o);
  run_tokens(g, " there was a little girl");
  CHECK(g.done());
  CHECK(g.generated_tokens() == 3);
  CHECK(g.finish_reason() == FinishReason::length);
  o.max_tokens = 511;  // 2 prompt tokens + 511 > 512
  CHECK_THROWS_AS(Generation(t, t.encode("Once", true, false), 512, 512, o), InputError);
}
