// The OpenAI API's shapes, without any sockets: requests of /v1/completions and
// /v1/chat/completions checked and turned into the mesh's GenerateRequest, and the JSON of the
// answers (whole, or as server-sent-event chunks). Pure functions, unit-tested.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "troupe/protocol/wire.hpp"

namespace troupe::cli::openai {

// What the server tells the parser about the model behind it.
struct ModelInfo {
  std::string id;             // what /v1/models lists and requests must name (when they name one)
  int seq_len = 0;            // the context, for max_tokens
  std::string chat_template;  // the node's --chat-template; empty = the model's own
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

enum class Endpoint { completions, chat };

struct ParsedRequest {
  Endpoint endpoint = Endpoint::completions;
  wire::GenerateRequest request;
  bool stream = false;
};

// Checks a request body and builds the mesh request. `fresh_seed` seeds the sampler when the
// request names no seed (or 0): the caller draws one from an entropy source for each request.
std::variant<ParsedRequest, ApiError> parse_request(Endpoint endpoint, std::string_view body,
                                                     const ModelInfo& model, uint64_t fresh_seed);

// The pieces of one answer, for building its JSON.
struct Answer {
  std::string id;       // "cmpl-…" / "chatcmpl-…"
  int64_t created = 0;  // Unix seconds
  std::string model;
};

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  nlohmann::json to_json() const;
};

// Whole (non-streamed) answers.
nlohmann::json completion_json(Endpoint endpoint, const Answer& a, const std::string& text,
                               const std::string& finish_reason, const Usage& usage);
// Streamed answers: one chunk per piece of text; the first chunk of a chat answer names the
// role; the last one carries the finish reason (and, beyond OpenAI, the usage).
nlohmann::json role_chunk(const Answer& a);
nlohmann::json text_chunk(Endpoint endpoint, const Answer& a, const std::string& text);
nlohmann::json final_chunk(Endpoint endpoint, const Answer& a, const std::string& finish_reason,
                           const Usage& usage);
// One server-sent event: "data: <json>\n\n". Invalid UTF-8 becomes U+FFFD, never an exception.
std::string sse_event(const nlohmann::json& j);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";
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
