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

// The payloads of "data: ..." events.
std::vector<std::string> data_lines(const std::string& events) {
  std::vector<std::string> out;
  for (std::size_t at = 0; (at = events.find("data: ", at)) != std::string::npos;) {
    const auto end = events.find("\n\n", at);
    out.push_back(events.substr(at + 6, end - at - 6));
    at = end;
  }
  return out;
}

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
  const ApiError model = bad(Endpoint::completions, R"({"model": 4, "prompt": "y"})");
  CHECK(model.http_status == 400);
  CHECK(model.to_json() == json::parse(R"({"error": {"message": ")" + model.message +
                                       R"(", "type": "invalid_request_error", "param": "model", "code": null}})"));
  // stream_options: only with stream, an object, include_usage a boolean; not in the Responses API.
  CHECK(bad(Endpoint::chat, R"({"messages": [{"role": "user", "content": "a"}], "stream_options": {"include_usage": true}})")
            .param == "stream_options");
  CHECK(bad(Endpoint::completions, R"({"prompt": "a", "stream": true, "stream_options": {"include_usage": 1}})").param ==
        "stream_options");
  CHECK(bad(Endpoint::responses, R"({"input": "a", "stream": true, "stream_options": {}})").param == "stream_options");
}

TEST_CASE("any model name stands for the mesh's model, and stream_options.include_usage is read", "[openai]") {
  for (const char* name : {"gpt-4o-mini", "stories260K", "llama3.2:1b", ""}) {
    CHECK(ok(Endpoint::chat, {{"model", name}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}}).request.chat);
  }
  const ParsedRequest asked = ok(Endpoint::completions, {{"prompt", "Hi"}, {"stream", true},
                                                         {"stream_options", {{"include_usage", true}}}});
  CHECK(asked.stream);
  CHECK(asked.include_usage);
  CHECK_FALSE(ok(Endpoint::completions, {{"prompt", "Hi"}, {"stream", true}}).include_usage);
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

TEST_CASE("responses requests become chat conversations", "[openai][responses]") {
  // A string input is one user message; instructions come first as the system message.
  const ParsedRequest p = ok(Endpoint::responses, {{"model", "stories260K"}, {"input", "Hi"},
                                                   {"instructions", "Be brief"}, {"max_output_tokens", 9},
                                                   {"temperature", 0.5}, {"top_p", 0.8}, {"stream", true}});
  CHECK(p.endpoint == Endpoint::responses);
  CHECK(p.request.chat);
  CHECK_FALSE(p.request.echo);
  CHECK(p.request.messages == std::vector<ChatMessage>{{"system", "Be brief"}, {"user", "Hi"}});
  CHECK(p.request.max_tokens == 9);
  CHECK(p.request.sampling.temperature == 0.5f);
  CHECK(p.request.sampling.topp == 0.8f);
  CHECK(p.stream);
  // A list of messages: content a string or input_text parts (output_text in an earlier answer),
  // type "message" optional, the developer role the system's; the defaults of what is refused pass.
  const json input = {{{"role", "developer"}, {"content", "D"}},
                      {{"type", "message"}, {"role", "user"}, {"content", {{{"type", "input_text"}, {"text", "U"}},
                                                                          {{"type", "input_text"}, {"text", "V"}}}}},
                      {{"role", "assistant"}, {"content", {{{"type", "output_text"}, {"text", "A"}}}}},
                      {{"role", "user"}, {"content", "W"}}};
  const ParsedRequest l = ok(Endpoint::responses, {{"input", input}, {"tools", json::array()}, {"tool_choice", "auto"},
                                                   {"store", false}, {"text", {{"format", {{"type", "text"}}}}},
                                                   {"truncation", "disabled"}, {"background", false}});
  CHECK(l.request.messages ==
        std::vector<ChatMessage>{{"system", "D"}, {"user", "UV"}, {"assistant", "A"}, {"user", "W"}});
  CHECK(l.request.max_tokens == 0);
  CHECK(l.request.sampling.temperature == 1.0f);
  CHECK_FALSE(l.stream);
  // The chat API's own names are not the Responses API's.
  CHECK(ok(Endpoint::responses, {{"input", "x"}, {"max_tokens", 3}}).request.max_tokens == 0);
}

TEST_CASE("bad responses requests name the field at fault", "[openai][responses]") {
  const auto param = [](const std::string& body) { return bad(Endpoint::responses, body).param; };
  CHECK(param(R"({})") == "input");
  CHECK(param(R"({"input": 3})") == "input");
  CHECK(param(R"({"input": []})") == "input");
  CHECK(param(R"({"input": "x", "instructions": 1})") == "instructions");
  CHECK(param(R"({"input": [{"role": "tool", "content": "x"}]})") == "input[0].role");
  CHECK(param(R"({"input": [{"type": "function_call_output", "role": "user", "content": "x"}]})") == "input[0].type");
  CHECK(param(R"({"input": [{"role": "user", "content": [{"type": "input_image", "text": "x"}]}]})") ==
        "input[0].content");
  CHECK(param(R"({"input": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]})") == "input[0].content");
  CHECK(param(R"({"input": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})") == "input");
  CHECK(param(R"({"input": "x", "max_output_tokens": 0})") == "max_output_tokens");
  CHECK(param(R"({"input": "x", "max_output_tokens": 1.5})") == "max_output_tokens");
  const ApiError long_cap = bad(Endpoint::responses, R"({"input": "x", "max_output_tokens": 513})");
  CHECK(long_cap.param == "max_output_tokens");
  CHECK(long_cap.code == "context_length_exceeded");
  CHECK(param(R"({"input": "x", "temperature": 3})") == "temperature");
  CHECK(param(R"({"input": "x", "top_p": -1})") == "top_p");
  CHECK(param(R"({"input": "x", "stream": "yes"})") == "stream");
  // What this server does not do is refused by name, not ignored.
  const std::vector<std::pair<std::string, json>> refused = {
      {"tools", json::parse(R"([{"type": "web_search"}])")},
      {"tool_choice", "required"},
      {"previous_response_id", "resp_1"},
      {"conversation", "conv_1"},
      {"background", true},
      {"prompt", {{"id", "p"}}},
      {"reasoning", {{"effort", "low"}}},
      {"include", {"reasoning.encrypted_content"}},
      {"max_tool_calls", 2},
      {"truncation", "auto"},
      {"text", {{"format", {{"type", "json_object"}}}}}};
  for (const auto& [name, value] : refused) {
    const json body = {{"input", "x"}, {name, value}};
    INFO(body.dump());
    const ApiError e = bad(Endpoint::responses, body.dump());
    CHECK(e.http_status == 400);
    CHECK(e.param == name);
    CHECK(e.code == "unsupported_parameter");
    CHECK(e.message.find(name) != std::string::npos);
  }
}

TEST_CASE("responses answers, whole and streamed", "[openai][responses]") {
  const Answer a{"resp_7-1", 1700000000, "stories260K"};
  CHECK(message_id(a) == "msg_7-1");
  const json whole = completion_json(Endpoint::responses, a, "Hello", "stop", {5, 2});
  CHECK(whole == json::parse(R"({"id": "resp_7-1", "object": "response", "created_at": 1700000000,
      "status": "completed", "model": "stories260K", "error": null, "incomplete_details": null,
      "output": [{"type": "message", "id": "msg_7-1", "status": "completed", "role": "assistant",
                  "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}],
      "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}})"));
  const json cut = completion_json(Endpoint::responses, a, "He", "length", {5, 1});
  CHECK(cut["status"] == "incomplete");
  CHECK(cut["output"][0]["status"] == "incomplete");
  CHECK(cut["incomplete_details"] == json{{"reason", "max_output_tokens"}});

  // The events: named, numbered from 0, the text in deltas and again whole at the end.
  EventStream s(Endpoint::responses, a);
  std::string body = s.start();
  body += s.text("Hel");
  body += s.text("lo");
  body += s.finish("stop", {5, 2});
  std::vector<std::string> types;
  std::string deltas;
  int expect_sequence = 0;
  for (std::size_t p = 0; p < body.size();) {
    const std::size_t end = body.find("\n\n", p);
    REQUIRE(end != std::string::npos);
    const std::string e = body.substr(p, end - p);
    REQUIRE(e.rfind("event: ", 0) == 0);
    const std::size_t nl = e.find('\n');
    REQUIRE(e.compare(nl + 1, 6, "data: ") == 0);
    const json data = json::parse(e.substr(nl + 7));
    CHECK(data["type"] == e.substr(7, nl - 7));
    CHECK(data["sequence_number"] == expect_sequence++);
    types.push_back(data["type"]);
    if (data["type"] == "response.output_text.delta") deltas += data["delta"].get<std::string>();
    if (data["type"] == "response.output_text.done") CHECK(data["text"] == "Hello");
    if (data["type"] == "response.created") CHECK(data["response"]["status"] == "in_progress");
    if (data["type"] == "response.completed") CHECK(data["response"] == whole);
    p = end + 2;
  }
  CHECK(deltas == "Hello");
  CHECK(types == std::vector<std::string>{"response.created", "response.in_progress", "response.output_item.added",
                                          "response.content_part.added", "response.output_text.delta",
                                          "response.output_text.delta", "response.output_text.done",
                                          "response.content_part.done", "response.output_item.done",
                                          "response.completed"});
  EventStream capped(Endpoint::responses, a);
  CHECK(capped.finish("length", {5, 0}).find("event: response.incomplete\n") != std::string::npos);
  EventStream failing(Endpoint::responses, a);
  ApiError e;
  e.message = "no mesh";
  e.code = "mesh_unavailable";
  const std::string error = failing.error(e);
  CHECK(error.rfind("event: error\ndata: ", 0) == 0);
  CHECK(json::parse(error.substr(error.find("data: ") + 6)) ==
        json::parse(R"({"type": "error", "sequence_number": 0, "code": "mesh_unavailable", "message": "no mesh", "param": null})"));
}

TEST_CASE("chat and completion streams: chunks, then [DONE]", "[openai]") {
  const Answer a{"chatcmpl-1", 5, "m"};
  EventStream chat(Endpoint::chat, a);
  CHECK(chat.start() == sse_event(json::parse(R"({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 5,
      "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]})")));
  CHECK(chat.text("x").find(R"("delta":{"content":"x"})") != std::string::npos);
  const std::string end = chat.finish("stop", {1, 1});
  CHECK(end.find("usage") == std::string::npos);  // not asked for
  CHECK(end.substr(end.size() - 14) == "data: [DONE]\n\n");
  // With stream_options.include_usage: "usage": null on every chunk, then one with no choices.
  EventStream counted(Endpoint::chat, a, true);
  CHECK(counted.start().find(R"("usage":null)") != std::string::npos);
  const std::vector<std::string> last = data_lines(counted.finish("stop", {1, 1}));
  REQUIRE(last.size() == 3);
  CHECK(json::parse(last[0])["choices"][0]["finish_reason"] == "stop");
  CHECK(json::parse(last[0])["usage"].is_null());
  CHECK(json::parse(last[1]) == json::parse(R"({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 5,
      "model": "m", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})"));
  CHECK(last[2] == "[DONE]");
  EventStream completion(Endpoint::completions, {"cmpl-1", 5, "m"});
  CHECK(completion.start().empty());
  CHECK(completion.text("y").find(R"("text":"y")") != std::string::npos);
}
