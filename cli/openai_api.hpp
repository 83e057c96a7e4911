// The OpenAI API's shapes, without any sockets: requests of /v1/completions,
// /v1/chat/completions and /v1/responses checked and turned into the mesh's GenerateRequest, and
// the JSON of the answers (whole, or as server-sent events). Pure functions, unit-tested.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "troupe/protocol/wire.hpp"

namespace troupe::cli::openai {

// What the server tells the parser about the model behind it.
struct ModelInfo {
  std::string id;             // what /v1/models lists and answers name (requests may name any model)
  int seq_len = 0;            // the context, for max_tokens
  std::string chat_template;  // the node's --chat-template; empty = the model's own
  int64_t created = 0;        // Unix seconds: when the model file was written, for /v1/models
};

// An error in the API's shape: {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the field at fault; empty = null
  std::string code;   // empty = null
  nlohmann::json to_json() const;
};

enum class Endpoint { completions, chat, responses };

// The request's fields that errors name: what to continue ("prompt", "messages", "input") and
// the cap on the answer's tokens ("max_tokens", "max_output_tokens").
const char* input_field(Endpoint endpoint);
const char* max_tokens_field(Endpoint endpoint);

struct ParsedRequest {
  Endpoint endpoint = Endpoint::completions;
  wire::GenerateRequest request;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: the usage as a last chunk of its own
};

// Checks a request body and builds the mesh request. `fresh_seed` seeds the sampler when the
// request names no seed (or 0): the caller draws one from an entropy source for each request.
std::variant<ParsedRequest, ApiError> parse_request(Endpoint endpoint, std::string_view body,
                                                     const ModelInfo& model, uint64_t fresh_seed);

// The pieces of one answer, for building its JSON.
struct Answer {
  std::string id;       // "cmpl-…" / "chatcmpl-…" / "resp_…"
  int64_t created = 0;  // Unix seconds
  std::string model;
};
// The id of a response's one message: "msg_" and the response id's part after its "_".
std::string message_id(const Answer& a);

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  nlohmann::json to_json(Endpoint endpoint) const;  // the Responses API names them input/output
};

// A whole (non-streamed) answer: the finish reason is run.c's ("stop", "length").
nlohmann::json completion_json(Endpoint endpoint, const Answer& a, const std::string& text,
                               const std::string& finish_reason, const Usage& usage);

// One server-sent event: "data: <json>\n\n". Invalid UTF-8 becomes U+FFFD, never an exception.
std::string sse_event(const nlohmann::json& j);

// The server-sent events of one streamed answer, in its endpoint's shape. Chat and completions:
// one chunk per piece of text (a chat answer's first names the role), the last with the finish
// reason, then — with `include_usage` — a chunk with no choices and the usage (every chunk before
// it has "usage": null), then "data: [DONE]". Responses: named events
// ("event: response.output_text.delta") numbered by sequence_number, the last the whole response.
class EventStream {
 public:
  EventStream(Endpoint endpoint, Answer answer, bool include_usage = false)
      : endpoint_(endpoint), answer_(std::move(answer)), include_usage_(include_usage) {}
  std::string start();
  std::string text(const std::string& piece);
  std::string finish(const std::string& finish_reason, const Usage& usage);
  std::string error(const ApiError& e);  // ends the stream

 private:
  nlohmann::json chunk(nlohmann::json choice) const;
  std::string event(const char* type, nlohmann::json data);

  Endpoint endpoint_;
  Answer answer_;
  bool include_usage_ = false;
  std::string text_;  // all of it so far, which the Responses API repeats at the end
  int sequence_ = 0;
};

// JSON text with invalid UTF-8 replaced, for whole answers.
std::string dump(const nlohmann::json& j);

// Text arrives in token pieces that may split a UTF-8 character (byte-level BPE does); JSON
// strings must hold whole characters. take() returns what is complete so far, finish() the rest.
class Utf8Joiner {
 public:
  std::string take(std::string_view piece);
  std::string finish() { return std::exchange(pending_, {}); }

 private:
  std::string pending_;
};

}  // namespace troupe::cli::openai
