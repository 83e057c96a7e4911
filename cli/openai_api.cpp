#include "openai_api.hpp"

#include <algorithm>
#include <cmath>

#include "troupe/text/generate.hpp"

// The requests: checked, and turned into the mesh's GenerateRequest (the answers: openai_answers.cpp).

namespace troupe::cli::openai {

using nlohmann::json;

namespace {

ApiError bad(std::string param, std::string message, std::string code = {}) {
  ApiError e;
  e.param = std::move(param);
  e.message = std::move(message);
  e.code = std::move(code);
  return e;
}

// A field that is absent or null reads as "not given".
const json* field(const json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::optional<ApiError> read_number(const json& body, const char* name, double lo, double hi,
                                    std::optional<double>& out) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) return bad(name, std::string("'") + name + "' must be a number");
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) {
    return bad(name, std::string("'") + name + "' must be between " + json(lo).dump() + " and " +
                         json(hi).dump());
  }
  out = x;
  return std::nullopt;
}

std::optional<ApiError> read_stop(const json& body, std::vector<std::string>& out) {
  const json* v = field(body, "stop");
  if (!v) return std::nullopt;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const json& s : *v) {
      if (!s.is_string()) return bad("stop", "'stop' must be a string or a list of strings");
      out.push_back(s.get<std::string>());
    }
  } else {
    return bad("stop", "'stop' must be a string or a list of strings");
  }
  if (out.size() > wire::kMaxStopStrings) {
    return bad("stop", "'stop' has " + std::to_string(out.size()) + " strings; at most " +
                           std::to_string(wire::kMaxStopStrings));
  }
  for (const std::string& s : out) {
    if (s.empty() || s.size() > wire::kMaxNameBytes) {
      return bad("stop", "each stop string must be 1 to " + std::to_string(wire::kMaxNameBytes) +
                             " bytes");
    }
  }
  return std::nullopt;
}

// How a conversation is written: the chat API's "messages", whose content parts are "text"; or
// the Responses API's "input", whose items may say type "message", whose parts are "input_text"
// (or "output_text", in an earlier answer), and whose "developer" role is the system's.
struct ConversationShape {
  const char* field;
  std::vector<std::string> part_types;
  bool input_items;
};
const ConversationShape kChatShape{"messages", {"text"}, false};
const ConversationShape kInputShape{"input", {"input_text", "output_text"}, true};

// Message content: a string, or a list of parts of which only text parts are taken.
std::optional<std::string> content_text(const json& content, const ConversationShape& shape) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return std::nullopt;
  std::string text;
  for (const json& part : content) {
    if (!part.is_object() || !part.contains("text") || !part["text"].is_string()) return std::nullopt;
    const std::string type = part.value("type", "");
    if (std::find(shape.part_types.begin(), shape.part_types.end(), type) == shape.part_types.end()) {
      return std::nullopt;
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

std::optional<ApiError> read_message(const json& m, const std::string& at, const ConversationShape& shape,
                                     std::vector<ChatMessage>& out) {
  if (!m.is_object()) return bad(at, at + " must be an object");
  if (const json* type = field(m, "type"); shape.input_items && type && *type != "message") {
    return bad(at + ".type", at + ".type must be 'message': no other input items are supported");
  }
  const json* role = field(m, "role");
  if (!role || !role->is_string()) return bad(at + ".role", at + ".role must be a string");
  std::string r = role->get<std::string>();
  if (shape.input_items && r == "developer") r = "system";
  if (r != "system" && r != "user" && r != "assistant") {
    return bad(at + ".role", at + ".role '" + r + "': expected system, " +
                                 (shape.input_items ? "developer, " : "") + "user or assistant");
  }
  const json* content = field(m, "content");
  const std::optional<std::string> text = content ? content_text(*content, shape) : std::nullopt;
  if (!text) {
    std::string parts;
    for (const std::string& t : shape.part_types) parts += (parts.empty() ? "" : " or ") + t;
    return bad(at + ".content", at + ".content must be a string (or a list of " + parts + " parts)");
  }
  out.push_back({r, *text});
  return std::nullopt;
}

// Appends the messages of `list` to `out` (which may hold the instructions already).
std::optional<ApiError> read_conversation(const json& list, const ConversationShape& shape,
                                          std::vector<ChatMessage>& out) {
  const std::string name = shape.field;
  if (!list.is_array() || list.empty()) {
    return bad(name, "'" + name + "' must be a non-empty list" + (shape.input_items ? " or a string" : ""));
  }
  if (list.size() > wire::kMaxChatMessages) return bad(name, "too many messages");
  for (std::size_t i = 0; i < list.size(); i++) {
    if (auto e = read_message(list[i], name + "[" + std::to_string(i) + "]", shape, out)) return e;
  }
  if (out.back().role == "assistant") {
    return bad(name, "the last message must be the user's (or a system message)");
  }
  return std::nullopt;
}

std::optional<ApiError> read_messages(const json& body, std::vector<ChatMessage>& out) {
  const json* v = field(body, "messages");
  if (!v) return bad("messages", "'messages' is required");
  return read_conversation(*v, kChatShape, out);
}

// The Responses API's conversation: "instructions" as the system message, then "input", a
// string (one user message) or a list of messages.
std::optional<ApiError> read_responses_input(const json& body, std::vector<ChatMessage>& out) {
  if (const json* instructions = field(body, "instructions")) {
    if (!instructions->is_string()) return bad("instructions", "'instructions' must be a string");
    out.push_back({"system", instructions->get<std::string>()});
  }
  const json* input = field(body, "input");
  if (!input) return bad("input", "'input' is required");
  if (!input->is_string()) return read_conversation(*input, kInputShape, out);
  out.push_back({"user", input->get<std::string>()});
  return std::nullopt;
}

// Responses API fields that ask for what this server does not do (tools, stored conversations,
// reasoning, structured output, ...): refused by name rather than ignored. Values that ask for
// nothing (null, false, empty, and the defaults listed) pass.
std::optional<ApiError> refuse_unsupported(const json& body) {
  static const std::vector<std::pair<const char*, std::vector<json>>> kUnsupported = {
      {"tools", {}}, {"tool_choice", {"none", "auto"}}, {"previous_response_id", {}},
      {"conversation", {}}, {"background", {}}, {"prompt", {}}, {"reasoning", {}}, {"include", {}},
      {"max_tool_calls", {}}, {"truncation", {"disabled"}},
      {"text", {json{{"format", {{"type", "text"}}}}}}};
  for (const auto& [name, accepted] : kUnsupported) {
    const json* v = field(body, name);
    if (!v || *v == false || (v->is_structured() && v->empty()) || *v == "") continue;
    if (std::find(accepted.begin(), accepted.end(), *v) != accepted.end()) continue;
    return bad(name, std::string("'") + name + "' is not supported by this server", "unsupported_parameter");
  }
  return std::nullopt;
}

}  // namespace

const char* input_field(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::completions: return "prompt";
    case Endpoint::chat: return "messages";
    case Endpoint::responses: return "input";
  }
  return "";
}

const char* max_tokens_field(Endpoint endpoint) {
  return endpoint == Endpoint::responses ? "max_output_tokens" : "max_tokens";
}

namespace {

// "model", when given, must be a string; any name stands for the one model this mesh serves, as
// llama.cpp's server and Ollama's OpenAI endpoint take it: clients written for a hosted model
// ("gpt-4o-mini") work unchanged. The answers name the mesh's model.
std::optional<ApiError> read_model(const json& body) {
  const json* m = field(body, "model");
  if (m && !m->is_string()) return bad("model", "'model' must be a string");
  return std::nullopt;
}

// "stream", and "stream_options": {"include_usage": true} asking for the usage as a chunk of its
// own at the end of the stream (chat and completions; OpenAI refuses it without "stream").
std::optional<ApiError> read_stream(const json& body, Endpoint endpoint, ParsedRequest& p) {
  if (const json* stream = field(body, "stream")) {
    if (!stream->is_boolean()) return bad("stream", "'stream' must be true or false");
    p.stream = stream->get<bool>();
  }
  const json* options = field(body, "stream_options");
  if (!options) return std::nullopt;
  if (!p.stream) return bad("stream_options", "'stream_options' is only allowed when 'stream' is true");
  if (!options->is_object() || endpoint == Endpoint::responses) {
    return bad("stream_options", endpoint == Endpoint::responses ? "the Responses API takes no 'stream_options'"
                                                                 : "'stream_options' must be an object");
  }
  if (const json* usage = field(*options, "include_usage")) {
    if (!usage->is_boolean()) return bad("stream_options", "'stream_options.include_usage' must be true or false");
    p.include_usage = usage->get<bool>();
  }
  return std::nullopt;
}

// What to continue: the prompt of a completion, or the conversation of a chat completion or a
// response.
std::optional<ApiError> read_input(const json& body, Endpoint endpoint, const ModelInfo& model,
                                   wire::GenerateRequest& r) {
  if (endpoint != Endpoint::completions) {
    auto e = endpoint == Endpoint::chat ? read_messages(body, r.messages) : read_responses_input(body, r.messages);
    if (e) return e;
    r.chat = true;
    r.echo = false;
    r.chat_template = model.chat_template;
    return std::nullopt;
  }
  const json* prompt = field(body, "prompt");
  // A list of one prompt is the same request; more would be several completions.
  if (prompt && prompt->is_array() && prompt->size() == 1) prompt = &(*prompt)[0];
  if (!prompt || !prompt->is_string()) return bad("prompt", "'prompt' must be a string");
  r.prompt = prompt->get<std::string>();
  if (r.prompt.size() > wire::kMaxTextBytes) return bad("prompt", "'prompt' is too long");
  r.echo = false;  // OpenAI answers with the completion only
  if (const json* echo = field(body, "echo")) {
    if (!echo->is_boolean()) return bad("echo", "'echo' must be true or false");
    r.echo = echo->get<bool>();
  }
  return std::nullopt;
}

// max_tokens (max_completion_tokens is the chat API's newer name for it; max_output_tokens the
// Responses API's), within the context.
std::optional<ApiError> read_max_tokens(const json& body, Endpoint endpoint, const ModelInfo& model,
                                        wire::GenerateRequest& r) {
  const char* max_name = max_tokens_field(endpoint);
  const json* max = field(body, max_name);
  if (!max && endpoint == Endpoint::chat) {
    max = field(body, "max_completion_tokens");
    max_name = "max_completion_tokens";
  }
  if (!max) return std::nullopt;
  if (!max->is_number_integer()) return bad(max_name, std::string("'") + max_name + "' must be an integer");
  const int64_t m = max->get<int64_t>();
  if (m < 1) return bad(max_name, std::string("'") + max_name + "' must be at least 1");
  if (m > model.seq_len) {
    return bad(max_name,
               std::string("'") + max_name + "' is " + std::to_string(m) + ", more than the model's context of " +
                   std::to_string(model.seq_len) + " tokens",
               "context_length_exceeded");
  }
  r.max_tokens = static_cast<int>(m);
  return std::nullopt;
}

// temperature, top_p and seed, with OpenAI's defaults (temperature 1, top_p 1); seed 0 or none:
// `fresh_seed`, as `troupe run` without -s.
std::optional<ApiError> read_sampling(const json& body, uint64_t fresh_seed, wire::GenerateRequest& r) {
  std::optional<double> temperature, top_p;
  if (auto e = read_number(body, "temperature", 0, 2, temperature)) return e;
  if (auto e = read_number(body, "top_p", 0, 1, top_p)) return e;
  long long seed = 0;
  if (const json* s = field(body, "seed")) {
    if (!s->is_number_integer()) return bad("seed", "'seed' must be an integer");
    seed = s->get<long long>();
  }
  r.sampling = sampling_settings(static_cast<float>(temperature.value_or(1.0)),
                                 static_cast<float>(top_p.value_or(1.0)), seed, fresh_seed);
  return std::nullopt;
}

}  // namespace

std::variant<ParsedRequest, ApiError> parse_request(Endpoint endpoint, std::string_view text,
                                                     const ModelInfo& model, uint64_t fresh_seed) {
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded()) return bad("", "the request body is not valid JSON");
  if (!body.is_object()) return bad("", "the request body must be a JSON object");

  ParsedRequest p;
  p.endpoint = endpoint;
  wire::GenerateRequest& r = p.request;
  if (auto e = read_model(body)) return *e;
  if (endpoint == Endpoint::responses) {
    if (auto e = refuse_unsupported(body)) return *e;
  }
  if (auto e = read_input(body, endpoint, model, r)) return *e;
  if (auto e = read_stream(body, endpoint, p)) return *e;
  if (const json* n = field(body, "n")) {
    if (!n->is_number_integer() || n->get<int64_t>() != 1) return bad("n", "only n = 1 is supported");
  }
  if (auto e = read_max_tokens(body, endpoint, model, r)) return *e;
  if (auto e = read_sampling(body, fresh_seed, r)) return *e;
  if (auto e = read_stop(body, r.stop)) return *e;
  return p;
}

}  // namespace troupe::cli::openai
