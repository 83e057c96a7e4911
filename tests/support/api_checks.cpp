#include "support/api_checks.hpp"

#include <catch2/catch.hpp>

namespace troupe::test {

using nlohmann::json;

json post(int port, const std::string& path, const json& body, int expect_status,
          const HttpHeaders& headers) {
  const HttpResponse r = http_request(port, "POST", path, body.dump(), "application/json", headers);
  INFO(path << " " << body.dump() << " -> " << r.status << " " << r.body);
  REQUIRE(r.status == expect_status);
  REQUIRE(r.headers.at("content-type").rfind("application/json", 0) == 0);
  return json::parse(r.body);
}

HttpResponse request_stream(int port, const std::string& path, json body) {
  body["stream"] = true;
  return http_request(port, "POST", path, body.dump());
}

Streamed check_stream(const std::string& path, const HttpResponse& r) {
  INFO(path << " -> " << r.status << " " << r.body);
  REQUIRE(r.status == 200);
  REQUIRE(r.headers.at("content-type").rfind("text/event-stream", 0) == 0);
  const std::vector<std::string> events = sse_events(r.body);
  REQUIRE(events.size() >= 2);
  REQUIRE(events.back() == "[DONE]");
  const bool chat = path == "/v1/chat/completions";
  Streamed s;
  s.transfers = r.chunks.size();
  for (std::size_t i = 0; i + 1 < events.size(); i++) {
    const json chunk = json::parse(events[i]);
    CHECK(chunk["object"] == (chat ? "chat.completion.chunk" : "text_completion"));
    const json& choice = chunk["choices"][0];
    const std::string piece = chat ? choice["delta"].value("content", "") : choice["text"].get<std::string>();
    if (!piece.empty()) s.pieces++;
    s.text += piece;
    const bool last = i + 2 == events.size();
    CHECK(choice["finish_reason"].is_null() == !last);
    if (last) {
      s.finish_reason = choice["finish_reason"];
      s.usage = chunk.value("usage", json());
    }
  }
  return s;
}

Streamed stream(int port, const std::string& path, const json& body) {
  return check_stream(path, request_stream(port, path, body));
}

StreamedResponse stream_response(int port, const json& body) {
  const HttpResponse r = request_stream(port, "/v1/responses", body);
  INFO("/v1/responses -> " << r.status << " " << r.body);
  REQUIRE(r.status == 200);
  REQUIRE(r.headers.at("content-type").rfind("text/event-stream", 0) == 0);
  StreamedResponse s;
  int sequence = 0;
  for (const auto& [name, data] : named_sse_events(r.body)) {
    const json event = json::parse(data);
    CHECK(event["type"] == name);
    CHECK(event["sequence_number"] == sequence++);
    s.types.push_back(name);
    if (name == "response.output_text.delta") {
      s.text += event["delta"].get<std::string>();
      s.pieces++;
    }
    if (name == "response.output_text.done") CHECK(event["text"] == s.text);
    if (name == "response.completed" || name == "response.incomplete") s.response = event["response"];
  }
  REQUIRE(!s.types.empty());
  CHECK(s.types.front() == "response.created");
  REQUIRE(s.response.is_object());
  CHECK((s.types.back() == "response.completed" || s.types.back() == "response.incomplete"));
  CHECK(s.response["output"][0]["content"][0]["text"] == s.text);
  return s;
}

std::string text_of(const json& answer) {
  const json& choice = answer["choices"][0];
  return choice.contains("message") ? choice["message"]["content"] : choice["text"];
}

}  // namespace troupe::test
