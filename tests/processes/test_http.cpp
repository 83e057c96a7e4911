// The HTTP API of `troupe node --http`, over real sockets against real node processes on
// stories260K: completions, chat completions and responses, whole and streamed (the SSE framing parsed by
// support/api_checks), the same text as `troupe generate` and `troupe chat`, bad requests, stop strings,
// cancelled streams, concurrent clients through different nodes, and each chat template read
// from a GGUF file. What the door withstands (keys, names, limits): test_http_security.cpp.
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <set>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/api_checks.hpp"
#include "support/http.hpp"
#include "support/nodes.hpp"
#include "support/process.hpp"
#include "troupe/model/gguf.hpp"
#include "troupe/model/llama_gguf_writer.hpp"
#include "troupe/text/chat_template.hpp"
#include "troupe/text/gguf_vocabulary.hpp"

using namespace troupe::test;
using nlohmann::json;

namespace {

// Nodes with an HTTP port each; http[i] belongs to node i.
struct HttpMesh {
  std::vector<int> http;
  std::unique_ptr<Mesh> mesh;

  explicit HttpMesh(const std::vector<NodeSpec>& nodes) {
    std::vector<std::vector<std::string>> args;
    for (std::size_t i = 0; i < nodes.size(); i++) {
      http.push_back(free_port());
      args.push_back({"--http", "127.0.0.1:" + std::to_string(http.back())});
    }
    mesh = std::make_unique<Mesh>(nodes, std::vector<std::string>{}, args);
    REQUIRE(mesh->wait_serving());
  }
};

}  // namespace

TEST_CASE("completions over HTTP print what troupe generate prints", "[http]") {
  HttpMesh m({{"s0", {{0, 2}}}, {"s1", {{2, 5}}}, {"entry", std::nullopt}});
  INFO(m.mesh->logs());
  const std::string prompt = "Once upon a time";

  const auto greedy = run_troupe({"generate", "--peer", m.mesh->address(2), "-t", "0", "-n", "0", "-i", prompt});
  REQUIRE(greedy.exit_code == 0);
  const std::string expected = greedy.out.substr(0, greedy.out.size() - 1);  // generate adds "\n"

  // The completion is the generated text only (OpenAI's default); echo: true puts the prompt first.
  const json plain = post(m.http[2], "/v1/completions", {{"model", "stories260K"}, {"prompt", prompt}, {"temperature", 0}});
  CHECK(prompt + text_of(plain) == expected);
  CHECK(plain["object"] == "text_completion");
  CHECK(plain["model"] == "stories260K");
  CHECK(plain["usage"]["prompt_tokens"] == 5);
  CHECK(plain["usage"]["total_tokens"] == plain["usage"]["prompt_tokens"].get<int>() + plain["usage"]["completion_tokens"].get<int>());
  const json echoed = post(m.http[0], "/v1/completions", {{"prompt", prompt}, {"temperature", 0}, {"echo", true}});
  CHECK(text_of(echoed) == expected);

  // Seeded sampling, through a stage node's door.
  const auto seeded = run_troupe({"generate", "--peer", m.mesh->address(1), "-t", "1", "-p", "0.9", "-s", "42", "-n", "0", "-i", prompt});
  REQUIRE(seeded.exit_code == 0);
  const json sampled = post(m.http[1], "/v1/completions", {{"prompt", prompt}, {"temperature", 1}, {"top_p", 0.9}, {"seed", 42}});
  CHECK(prompt + text_of(sampled) + "\n" == seeded.out);

  // Streamed: the same text, in many events and many HTTP chunks.
  const Streamed s = stream(m.http[1], "/v1/completions", {{"prompt", prompt}, {"temperature", 1}, {"top_p", 0.9}, {"seed", 42}});
  CHECK(s.text == text_of(sampled));
  CHECK(s.finish_reason == sampled["choices"][0]["finish_reason"]);
  CHECK(s.usage.is_null());  // not asked for
  // Asked for (stream_options.include_usage): a chunk of its own, with no choices, at the end.
  const HttpResponse counted = http_request(m.http[1], "POST", "/v1/completions",
                                            json({{"prompt", prompt}, {"temperature", 1}, {"top_p", 0.9}, {"seed", 42},
                                                  {"stream", true}, {"stream_options", {{"include_usage", true}}}})
                                                .dump());
  const std::vector<std::string> events = sse_events(counted.body);
  REQUIRE(events.size() >= 3);
  const json usage_chunk = json::parse(events[events.size() - 2]);
  CHECK(usage_chunk["choices"] == json::array());
  CHECK(usage_chunk["usage"] == sampled["usage"]);
  CHECK(json::parse(events[0])["usage"].is_null());
  CHECK(s.pieces > 10);
  CHECK(s.transfers > 10);

  // max_tokens caps the sampled tokens: finish_reason "length".
  const json capped = post(m.http[2], "/v1/completions", {{"prompt", prompt}, {"temperature", 0}, {"max_tokens", 7}});
  CHECK(capped["usage"]["completion_tokens"] == 7);
  CHECK(capped["choices"][0]["finish_reason"] == "length");
  CHECK(expected.rfind(prompt + text_of(capped), 0) == 0);
}

TEST_CASE("chat completions over HTTP answer as troupe chat does, whole and streamed", "[http]") {
  HttpMesh m({{"s0", {{0, 5}}}, {"entry", std::nullopt}});
  INFO(m.mesh->logs());
  // troupe chat sends the conversation, which the node renders with its template (llama2 here:
  // one turn is run.c's chat prompt "[INST] Hi there [/INST]"), and keeps the history.
  const auto cli = run_troupe({"chat", "--peer", m.mesh->address(1), "-t", "0"}, {},
                              "Hi there\nTell me more\n/stats\n/reset\nHi there\n/quit\nnever sent\n");
  REQUIRE(cli.exit_code == 0);
  std::vector<std::string> said;  // what follows each "User: " prompt
  for (std::size_t at = 0; (at = cli.out.find("User: ", at)) != std::string::npos;) {
    const std::size_t next = cli.out.find("User: ", at + 6);
    said.push_back(cli.out.substr(at + 6, (next == std::string::npos ? cli.out.size() : next) - at - 6));
    at += 6;
  }
  INFO(cli.out);
  REQUIRE(said.size() == 6);  // three answers, the stats, the reset, /quit (which prints nothing)
  auto answer = [&](const std::string& s) {
    REQUIRE(s.rfind("Assistant: ", 0) == 0);
    REQUIRE(s.back() == '\n');
    return s.substr(11, s.size() - 12);
  };
  const std::string reply = answer(said[0]);
  REQUIRE(!reply.empty());
  CHECK(said[2].rfind("2 turns, ", 0) == 0);
  CHECK(said[3] == "(a new conversation)\n");
  CHECK(answer(said[4]) == reply);  // after /reset, the same first turn
  CHECK(said[5].empty());
  // The second turn saw the first: the chat API with the same history says the same.
  const json history = json::array({{{"role", "user"}, {"content", "Hi there"}},
                                    {{"role", "assistant"}, {"content", reply}},
                                    {{"role", "user"}, {"content", "Tell me more"}}});
  CHECK(text_of(post(m.http[0], "/v1/chat/completions", {{"messages", history}, {"temperature", 0}})) ==
        answer(said[1]));

  const json messages = json::array({{{"role", "user"}, {"content", "Hi there"}}});
  const json whole = post(m.http[1], "/v1/chat/completions", {{"messages", messages}, {"temperature", 0}});
  CHECK(whole["object"] == "chat.completion");
  CHECK(whole["choices"][0]["message"]["role"] == "assistant");
  CHECK(text_of(whole) == reply);
  const Streamed s = stream(m.http[0], "/v1/chat/completions", {{"messages", messages}, {"temperature", 0}});
  CHECK(s.text == reply);
  CHECK(s.finish_reason == whole["choices"][0]["finish_reason"]);
}

TEST_CASE("responses over HTTP answer as chat completions do, whole and streamed", "[http][responses]") {
  HttpMesh m({{"s0", {{0, 5}}}, {"entry", std::nullopt}});
  INFO(m.mesh->logs());
  const json messages = json::array({{{"role", "system"}, {"content", "Be kind"}}, {{"role", "user"}, {"content", "Hi there"}}});
  const json chat = post(m.http[1], "/v1/chat/completions", {{"messages", messages}, {"temperature", 0}});
  const std::string reply = text_of(chat);
  REQUIRE(!reply.empty());

  // Instructions and a string input are the chat API's system and user messages.
  const json whole = post(m.http[1], "/v1/responses",
                          {{"model", "stories260K"}, {"instructions", "Be kind"}, {"input", "Hi there"}, {"temperature", 0}});
  CHECK(whole["object"] == "response");
  CHECK(whole["id"].get<std::string>().rfind("resp_", 0) == 0);
  CHECK(whole["model"] == "stories260K");
  CHECK(whole["status"] == "completed");
  CHECK(whole["incomplete_details"].is_null());
  REQUIRE(whole["output"].size() == 1);
  const json& message = whole["output"][0];
  CHECK(message["type"] == "message");
  CHECK(message["role"] == "assistant");
  CHECK(message["id"].get<std::string>().rfind("msg_", 0) == 0);
  CHECK(message["content"][0]["type"] == "output_text");
  CHECK(message["content"][0]["text"] == reply);
  CHECK(whole["usage"]["input_tokens"] == chat["usage"]["prompt_tokens"]);
  CHECK(whole["usage"]["output_tokens"] == chat["usage"]["completion_tokens"]);
  CHECK(whole["usage"]["total_tokens"] == chat["usage"]["total_tokens"]);

  // The same conversation as a list of input messages, through the other node.
  const json input = json::array({{{"role", "developer"}, {"content", "Be kind"}},
                                  {{"type", "message"}, {"role", "user"},
                                   {"content", {{{"type", "input_text"}, {"text", "Hi there"}}}}}});
  const json listed = post(m.http[0], "/v1/responses", {{"input", input}, {"temperature", 0}});
  CHECK(listed["output"][0]["content"][0]["text"] == reply);

  // Streamed: the same text in many deltas; the last event carries the whole response.
  const StreamedResponse s = stream_response(m.http[0], {{"input", input}, {"temperature", 0}});
  CHECK(s.text == reply);
  CHECK(s.pieces > 1);
  CHECK(s.types.back() == "response.completed");
  CHECK(s.response["status"] == "completed");
  CHECK(s.response["usage"] == whole["usage"]);
}

TEST_CASE("responses over HTTP: max_output_tokens, and refusals that name the field", "[http][responses]") {
  HttpMesh m({{"s0", {{0, 5}}}});
  INFO(m.mesh->logs());
  const json reply = post(m.http[0], "/v1/responses", {{"input", "Hi there"}, {"temperature", 0}})["output"][0];

  // max_output_tokens cuts it short: status incomplete, whole and streamed.
  const json capped_body = {{"input", "Hi there"}, {"temperature", 0}, {"max_output_tokens", 3}};
  const json capped = post(m.http[0], "/v1/responses", capped_body);
  CHECK(capped["status"] == "incomplete");
  CHECK(capped["incomplete_details"]["reason"] == "max_output_tokens");
  CHECK(capped["usage"]["output_tokens"] == 3);
  const StreamedResponse cut = stream_response(m.http[0], capped_body);
  CHECK(cut.types.back() == "response.incomplete");
  CHECK(cut.text == capped["output"][0]["content"][0]["text"]);
  CHECK(reply["content"][0]["text"].get<std::string>().rfind(cut.text, 0) == 0);

  // Refusals in OpenAI's error shape, naming the field; the door keeps serving.
  const json tools = post(m.http[0], "/v1/responses", {{"input", "x"}, {"tools", {{{"type", "web_search"}}}}}, 400);
  CHECK(tools["error"]["param"] == "tools");
  CHECK(tools["error"]["code"] == "unsupported_parameter");
  CHECK(post(m.http[0], "/v1/responses", {{"input", json::array()}}, 400)["error"]["param"] == "input");
  // A client written for a hosted model gets this mesh's answer, named by this mesh's model.
  const json hosted = post(m.http[0], "/v1/responses", {{"input", "Hi there"}, {"model", "gpt-4o"}, {"temperature", 0}});
  CHECK(hosted["model"] == "stories260K");
  const json unnamed = post(m.http[0], "/v1/responses", {{"input", "Hi there"}, {"temperature", 0}});
  CHECK(hosted["output"][0]["content"][0]["text"] == unnamed["output"][0]["content"][0]["text"]);
  const json too_long = post(m.http[0], "/v1/responses", {{"input", "Hi there"}, {"max_output_tokens", 512}}, 400);
  CHECK(too_long["error"]["param"] == "max_output_tokens");
  CHECK(too_long["error"]["code"] == "context_length_exceeded");
  CHECK(post(m.http[0], "/v1/responses", {{"input", "Hi there"}, {"temperature", 0}})["output"][0]["content"] ==
        reply["content"]);
  // Counted under their own path.
  const std::string metrics = http_request(m.http[0], "GET", "/metrics").body;
  CHECK(metrics.find("troupe_http_requests_total{path=\"/v1/responses\",code=\"400\"} 3") != std::string::npos);
}

TEST_CASE("stop strings end the text before them, whole and streamed", "[http]") {
  HttpMesh m({{"s0", {{0, 5}}}});
  const json full = post(m.http[0], "/v1/completions", {{"prompt", "Once upon a time"}, {"temperature", 0}, {"max_tokens", 100}});
  const std::string text = text_of(full);
  const auto at = text.find("park");
  REQUIRE(at != std::string::npos);
  for (const json& stop : {json("park"), json::array({"zebra", "park", "ark."})}) {
    const json body = {{"prompt", "Once upon a time"}, {"temperature", 0}, {"max_tokens", 100}, {"stop", stop}};
    const json whole = post(m.http[0], "/v1/completions", body);
    CHECK(text_of(whole) == text.substr(0, at));
    CHECK(whole["choices"][0]["finish_reason"] == "stop");
    const Streamed s = stream(m.http[0], "/v1/completions", body);
    CHECK(s.text == text.substr(0, at));
    CHECK(s.finish_reason == "stop");
  }
}

TEST_CASE("requests without a seed each get one of their own", "[http]") {
  HttpMesh m({{"s0", {{0, 5}}}});
  // Four requests within a second: a seed from a clock in seconds would give all four one story.
  std::set<std::string> texts;
  for (int i = 0; i < 4; i++) {
    texts.insert(text_of(post(m.http[0], "/v1/completions",
                              {{"prompt", "Once upon a time"}, {"temperature", 1}, {"max_tokens", 60}})));
  }
  CHECK(texts.size() > 1);
  // A seed given is still the same text every time.
  const json seeded = {{"prompt", "Once upon a time"}, {"temperature", 1}, {"max_tokens", 60}, {"seed", 7}};
  CHECK(text_of(post(m.http[0], "/v1/completions", seeded)) == text_of(post(m.http[0], "/v1/completions", seeded)));
}

TEST_CASE("the other endpoints: models, health, mesh, metrics, the page", "[http]") {
  HttpMesh m({{"s0", {{0, 2}}}, {"s1", {{2, 5}}}});
  const HttpResponse models = http_request(m.http[0], "GET", "/v1/models");
  REQUIRE(models.status == 200);
  CHECK(json::parse(models.body)["data"][0]["id"] == "stories260K");
  // When the model file was written, as OpenAI's `created` says when a model was.
  const int64_t created = json::parse(models.body)["data"][0]["created"];
  const auto written = std::filesystem::last_write_time(stories_model());
  CHECK(created == std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::file_clock::to_sys(written).time_since_epoch()).count());
  CHECK(http_request(m.http[1], "GET", "/health").status == 200);

  const HttpResponse mesh = http_request(m.http[1], "GET", "/mesh");
  REQUIRE(mesh.status == 200);
  const auto status = run_troupe({"status", "--peer", m.mesh->address(1), "--json"});
  REQUIRE(status.exit_code == 0);
  // The same JSON, apart from the node's live counters (gossip keeps sending frames meanwhile),
  // the time each member has been in its state, and the page's pipeline view.
  json from_http = json::parse(mesh.body), from_cli = json::parse(status.out);
  REQUIRE(from_http.contains("counters"));
  REQUIRE(from_http.contains("pipeline"));
  for (json* j : {&from_http, &from_cli}) {
    j->erase("counters");
    j->erase("pipeline");
    for (auto& member : (*j)["members"]) member.erase("since_seconds");
  }
  CHECK(from_http == from_cli);

  post(m.http[0], "/v1/completions", {{"prompt", "Hello"}, {"temperature", 0}, {"max_tokens", 9}});
  const HttpResponse metrics = http_request(m.http[0], "GET", "/metrics");
  REQUIRE(metrics.status == 200);
  CHECK(metrics.body.find("troupe_tokens_generated_total 9") != std::string::npos);
  CHECK(metrics.body.find("troupe_active_sessions 0") != std::string::npos);
  CHECK(metrics.body.find("troupe_completions_total{finish_reason=\"length\"} 1") != std::string::npos);
  CHECK(metrics.body.find("troupe_mesh_members{state=\"alive\"} 2") != std::string::npos);
  CHECK(metrics.body.find("troupe_decode_tokens_per_second ") != std::string::npos);
  // The node's own counters: node 0 holds layers 0:2 and is the entry, so each decode step
  // crosses two hops (to s1 and back); its stage computed the 1 + 9 positions run.
  auto value = [&](const std::string& name) {
    const auto at = metrics.body.find("\n" + name + " ");
    REQUIRE(at != std::string::npos);
    return std::stod(metrics.body.substr(at + name.size() + 2));
  };
  CHECK(value("troupe_node_tokens_generated_total") == 9);
  // The pipeline view at the other node: each stage as its own node tells it.
  const json pipeline = json::parse(http_request(m.http[1], "GET", "/mesh").body)["pipeline"];
  INFO(pipeline.dump());
  REQUIRE(pipeline["stages"].size() == 2);
  for (int i = 0; i < 2; i++) {
    const json& stage = pipeline["stages"][i];
    CHECK(stage["node"] == "s" + std::to_string(i));
    CHECK(stage["answered"] == true);
    CHECK(stage["positions"].get<uint64_t>() >= 9);  // the prompt and the 9 tokens sampled, at each stage
    CHECK(stage["ms_per_position"].get<double>() > 0);
    CHECK(stage["rss_bytes"].get<uint64_t>() > (1u << 20));
    CHECK(stage["peak_rss_bytes"].get<uint64_t>() >= stage["rss_bytes"].get<uint64_t>());
  }
  CHECK(value("troupe_node_sessions_active") == 0);
  CHECK(value("troupe_node_sessions_total") == 1);
  CHECK(value("troupe_stage_positions_total") >= 9);
  CHECK(value("troupe_stage_compute_seconds_total") > 0);
  CHECK(value("troupe_network_bytes_total{direction=\"sent\"}") > 0);
  CHECK(value("troupe_hops_total") == 2 * 8);
  CHECK(value("troupe_hop_network_seconds_total") > 0);

  const HttpResponse page = http_request(m.http[1], "GET", "/");
  CHECK(page.status == 200);
  CHECK(page.headers.at("content-type").rfind("text/html", 0) == 0);
  CHECK(page.body.find("/v1/chat/completions") != std::string::npos);
}

TEST_CASE("bad requests get 4xx and an OpenAI error object, and the server keeps serving", "[http]") {
  HttpMesh m({{"s0", {{0, 5}}}});
  const int port = m.http[0];
  auto error = [&](const std::string& path, const std::string& body, int status) {
    const HttpResponse r = http_request(port, body.empty() ? "GET" : "POST", path, body);
    INFO(path << " " << body.substr(0, 200) << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == status);
    const json j = json::parse(r.body);
    REQUIRE(j["error"]["message"].is_string());
    CHECK(!j["error"]["message"].get<std::string>().empty());
    CHECK(j["error"]["type"].is_string());
    CHECK(j["error"].contains("param"));
    CHECK(j["error"].contains("code"));
    return j["error"];
  };
  error("/v1/completions", "{\"prompt\": ", 400);
  error("/v1/completions", "[1, 2]", 400);
  CHECK(error("/v1/completions", R"({"prompt": 5})", 400)["param"] == "prompt");
  CHECK(error("/v1/completions", R"({"prompt": "x", "temperature": "hot"})", 400)["param"] == "temperature");
  CHECK(error("/v1/completions", R"({"prompt": "x", "max_tokens": 1.5})", 400)["param"] == "max_tokens");
  CHECK(error("/v1/completions", R"({"prompt": "x", "stream": "yes"})", 400)["param"] == "stream");
  CHECK(error("/v1/completions", R"({"prompt": "x", "stop": [1]})", 400)["param"] == "stop");
  CHECK(error("/v1/chat/completions", R"({"messages": "hi"})", 400)["param"] == "messages");
  CHECK(error("/v1/chat/completions", R"({"messages": [{"role": "robot", "content": "x"}]})", 400)["param"] ==
        "messages[0].role");
  CHECK(error("/v1/completions", R"({"model": ["gpt-4"], "prompt": "x"})", 400)["param"] == "model");
  CHECK(error("/v1/completions", R"({"prompt": "x", "stream_options": {"include_usage": true}})", 400)["param"] ==
        "stream_options");
  CHECK(error("/v1/completions", R"({"prompt": "x", "max_tokens": 100000})", 400)["code"] ==
        "context_length_exceeded");
  // Within the context alone, but not together with the prompt.
  const json both = error("/v1/completions", R"({"prompt": "Once upon a time", "max_tokens": 510})", 400);
  CHECK(both["code"] == "context_length_exceeded");
  CHECK(both["param"] == "max_tokens");
  std::string long_prompt;
  for (int i = 0; i < 300; i++) long_prompt += "Once upon a time ";
  CHECK(error("/v1/completions", json({{"prompt", long_prompt}}).dump(), 400)["param"] == "prompt");
  CHECK(error("/v1/completions", json({{"prompt", std::string(2 << 20, 'a')}}).dump(), 413)["code"] ==
        "request_too_large");
  CHECK(error("/v2/nothing", "", 404)["code"] == "not_found");
  CHECK(error("/v1/nothing", "{}", 404)["code"] == "not_found");

  const json ok = post(port, "/v1/completions", {{"prompt", "Once"}, {"temperature", 0}, {"max_tokens", 5}});
  CHECK(ok["usage"]["completion_tokens"] == 5);
  CHECK(m.mesh->process(0).running());
}

TEST_CASE("a dropped stream, or a dropped request for a whole answer, ends its session at the node", "[http]") {
  // A random-weight model with a long context, so that a completion would run for seconds: only
  // the client's going away can end it this soon.
  TempDir dir;
  const std::string model = dir / "long.gguf";
  const auto synth = run_troupe({"synth", "--dim", "128", "--hidden", "384", "--layers", "2", "--heads", "4",
                                 "--kv-heads", "4", "--vocab", "512", "--seq-len", "16384", "--tokenizer",
                                 stories_tokenizer(), "--threads", "1", "--out", model});
  REQUIRE(synth.exit_code == 0);
  const int listen = free_port(), http = free_port();
  BackgroundProcess node({TROUPE_BINARY, "node", "--listen", "127.0.0.1:" + std::to_string(listen), "--model",
                          model, "--layers", "0:2", "--threads", "1", "--http", std::to_string(http)},
                         dir / "node.log");
  auto healthy = [&] {
    try {
      return http_request(http, "GET", "/health").status == 200;
    } catch (const std::exception&) {
      return false;
    }
  };
  for (int i = 0; i < 500 && !healthy(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(healthy());

  auto metric = [&] { return http_request(http, "GET", "/metrics").body; };
  for (int round = 0; round < 4; round++) {
    if (round < 3) {
      HttpStream s(http, "/v1/completions", R"({"prompt": "Once", "temperature": 0, "stream": true})");
      const std::string got = s.read_until("\"text\"");
      REQUIRE(got.find("\"text\"") != std::string::npos);
    } else {  // a whole answer asked for, the client gone before it comes
      HttpStream s(http, "/v1/completions", R"({"prompt": "Once", "temperature": 0, "max_tokens": 16000})");
      for (int i = 0; i < 500 && metric().find("troupe_active_sessions 1") == std::string::npos; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      REQUIRE(metric().find("troupe_active_sessions 1") != std::string::npos);
    }  // dropped here, mid-answer
    for (int i = 0; i < 500 && metric().find("troupe_active_sessions 0") == std::string::npos; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(metric().find("troupe_active_sessions 0") != std::string::npos);
  }
  // Each of the four sessions was ended because its client went away, none ran to its end.
  auto went_away = [&] {
    const std::string log = node.log();
    std::size_t n = 0;
    for (auto at = log.find("its client went away"); at != std::string::npos; at = log.find("its client went away", at + 1)) n++;
    return n;
  };
  for (int i = 0; i < 500 && went_away() < 4; i++) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  INFO(node.log());
  CHECK(went_away() == 4);
  CHECK(http_request(http, "GET", "/metrics").body.find("troupe_completions_total") != std::string::npos);
  CHECK(http_request(http, "GET", "/metrics").body.find("finish_reason") == std::string::npos);
}

TEST_CASE("eight concurrent streaming clients through different nodes all get their answers", "[http]") {
  HttpMesh m({{"s0", {{0, 2}}}, {"s1", {{2, 5}}}, {"entry", std::nullopt}});
  INFO(m.mesh->logs());
  std::vector<std::string> expected;
  for (int i = 0; i < 8; i++) {
    const json whole = post(m.http[0], "/v1/completions",
                            {{"prompt", "Once upon a time"}, {"temperature", 1}, {"seed", 100 + i}, {"max_tokens", 200}});
    expected.push_back(text_of(whole));
  }
  std::vector<std::future<HttpResponse>> clients;
  for (int i = 0; i < 8; i++) {
    clients.push_back(std::async(std::launch::async, [&, i] {
      return request_stream(m.http[i % 3], "/v1/completions",
                            {{"prompt", "Once upon a time"}, {"temperature", 1}, {"seed", 100 + i}, {"max_tokens", 200}});
    }));
  }
  for (int i = 0; i < 8; i++) {
    const Streamed s = check_stream("/v1/completions", clients[i].get());
    CHECK(s.text == expected[i]);
    CHECK(!s.finish_reason.empty());
  }
}

namespace {

// A GGUF model that answers every prompt with the token `end` at once, carrying `jinja` as its
// tokenizer.chat_template and the llama2.c vocabulary plus `specials` (control tokens). Its
// weights make that so: attention and feed-forward matrices are zero, so the last hidden state
// is the embedding (all ones) whatever the prompt, and only row `end` of the classifier is not
// zero.
troupe::Tokenizer write_chat_model(const std::string& path, const std::string& jinja,
                                   const std::vector<std::string>& specials, const std::string& end_piece) {
  using namespace troupe;
  const Tokenizer llama2c = Tokenizer::load_llama2c(stories_tokenizer(), 512);
  Vocabulary v = gguf_vocabulary_from_llama2c(llama2c.vocab());
  for (const std::string& s : specials) {
    v.pieces.push_back(s);
    v.scores.push_back(0);
    v.types.push_back(TokenType::control);
  }
  v.index();
  const int end = v.lookup(end_piece);
  REQUIRE(end >= 0);
  ModelConfig config;
  config.dim = 16;
  config.hidden_dim = 32;
  config.n_layers = 1;
  config.n_heads = 2;
  config.n_kv_heads = 2;
  config.vocab_size = v.size();
  config.seq_len = 256;
  LlamaGgufOptions options;
  options.name = "chat-test";
  options.threads = 1;
  options.tokenizer = [&](GgufWriter& w) {
    set_tokenizer_metadata(w, v, "llama");
    w.set_string("tokenizer.chat_template", jinja);
  };
  write_llama_gguf(path, config, options, [&](const LlamaTensor& t, int row, float* out) {
    bool ones = !t.matrix || t.kind == LlamaTensorKind::token_embedding ||
                (t.kind == LlamaTensorKind::output && row == end);
    for (int i = 0; i < t.cols; i++) out[i] = ones ? 1.0f : 0.0f;
  });
  return Tokenizer::from_gguf(GgufFile::open(path));
}

}  // namespace

TEST_CASE("each chat template, recognised from a GGUF, ends the answer at its end of turn", "[http][chat-template]") {
  struct Case {
    std::string name, jinja;
    std::vector<std::string> specials;
    std::string end;
  };
  const std::vector<Case> cases = {
      {"llama2", "{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}", {}, "</s>"},
      {"llama3", "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}",
       {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}, "<|eot_id|>"},
      {"chatml", "{{ '<|im_start|>' + message['role'] + '\\n' }}", {"<|im_start|>", "<|im_end|>"}, "<|im_end|>"},
      {"zephyr", "{{ '<|user|>\\n' + message['content'] + eos_token }}", {}, "</s>"},
  };
  const std::vector<troupe::ChatMessage> messages = {{"system", "Be brief."}, {"user", "Hi there"}};
  for (const Case& c : cases) {
    INFO("template " << c.name);
    TempDir dir;
    const std::string model = dir / "chat.gguf";
    const troupe::Tokenizer tokenizer = write_chat_model(model, c.jinja, c.specials, c.end);
    const auto expected = troupe::render_chat(*troupe::chat_template_named(c.name), tokenizer, messages);
    const int listen = free_port(), http = free_port();
    BackgroundProcess node({TROUPE_BINARY, "node", "--listen", "127.0.0.1:" + std::to_string(listen), "--model",
                            model, "--layers", "0:1", "--threads", "1", "--http", std::to_string(http)},
                           dir / "node.log");
    json models;
    for (int i = 0; i < 500; i++) {
      try {
        const HttpResponse r = http_request(http, "GET", "/v1/models");
        models = json::parse(r.body);
        break;
      } catch (const std::exception&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    INFO(node.log());
    REQUIRE(models.is_object());
    CHECK(models["data"][0]["chat_template"] == c.name);
    const json body = {{"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi there"}}}},
                       {"temperature", 0},
                       {"max_tokens", 50}};
    const json answer = post(http, "/v1/chat/completions", body);
    CHECK(answer["usage"]["prompt_tokens"] == expected.tokens.size());
    CHECK(answer["usage"]["completion_tokens"] == 1);  // the end-of-turn token, at once
    CHECK(answer["choices"][0]["finish_reason"] == "stop");
    CHECK(text_of(answer).empty());
  }
}
