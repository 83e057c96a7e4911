#include "openai_api.hpp"

#include <cmath>

#include "troupe/text/generate.hpp"

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

json nullable(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

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

// Message content: a string, or OpenAI's list of parts of which only text parts are taken.
std::optional<std::string> content_text(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return std::nullopt;
  std::string text;
  for (const json& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      return std::nullopt;
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

std::optional<ApiError> read_messages(const json& body, std::vector<ChatMessage>& out) {
  const json* v = field(body, "messages");
  if (!v) return bad("messages", "'messages' is required");
  if (!v->is_array() || v->empty()) return bad("messages", "'messages' must be a non-empty list");
  if (v->size() > wire::kMaxChatMessages) return bad("messages", "too many messages");
  for (std::size_t i = 0; i < v->size(); i++) {
    const json& m = (*v)[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return bad(at, at + " must be an object");
    const json* role = field(m, "role");
    if (!role || !role->is_string()) return bad(at + ".role", at + ".role must be a string");
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "user" && r != "assistant") {
      return bad(at + ".role", at + ".role '" + r + "': expected system, user or assistant");
    }
    const json* content = field(m, "content");
    const std::optional<std::string> text = content ? content_text(*content) : std::nullopt;
    if (!text) return bad(at + ".content", at + ".content must be a string (or a list of text parts)");
    out.push_back({r, *text});
  }
  if (out.back().role == "assistant") {
    return bad("messages", "the last message must be the user's (or a system message)");
  }
  return std::nullopt;
}

}  // namespace

json ApiError::to_json() const {
  return {{"error", {{"message", message}, {"type", type}, {"param", nullable(param)},
                     {"code", nullable(code)}}}};
}

json Usage::to_json() const {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {

// "model" must name the model this mesh serves, when it names one.
std::optional<ApiError> read_model(const json& body, const ModelInfo& model) {
  const json* m = field(body, "model");
  if (!m) return std::nullopt;
  if (!m->is_string()) return bad("model", "'model' must be a string");
  if (m->get<std::string>() == model.id) return std::nullopt;
  ApiError e = bad("model", "the model '" + m->get<std::string>() + "' does not exist here; this mesh serves '" +
                                model.id + "'",
                   "model_not_found");
  e.http_status = 404;
  return e;
}

// What to continue: the prompt of a completion, or the conversation of a chat completion.
std::optional<ApiError> read_input(const json& body, Endpoint endpoint, const ModelInfo& model,
                                   wire::GenerateRequest& r) {
  if (endpoint == Endpoint::chat) {
    if (auto e = read_messages(body, r.messages)) return e;
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

// max_tokens (max_completion_tokens is the chat API's newer name for it), within the context.
std::optional<ApiError> read_max_tokens(const json& body, Endpoint endpoint, const ModelInfo& model,
                                        wire::GenerateRequest& r) {
  const json* max = field(body, "max_tokens");
  const char* max_name = "max_tokens";
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
  if (auto e = read_model(body, model)) return *e;
  if (auto e = read_input(body, endpoint, model, r)) return *e;
  if (const json* stream = field(body, "stream")) {
    if (!stream->is_boolean()) return bad("stream", "'stream' must be true or false");
    p.stream = stream->get<bool>();
  }
  if (const json* n = field(body, "n")) {
    if (!n->is_number_integer() || n->get<int64_t>() != 1) return bad("n", "only n = 1 is supported");
  }
  if (auto e = read_max_tokens(body, endpoint, model, r)) return *e;
  if (auto e = read_sampling(body, fresh_seed, r)) return *e;
  if (auto e = read_stop(body, r.stop)) return *e;
  return p;
}

json completion_json(Endpoint endpoint, const Answer& a, const std::string& text,
                     const std::string& finish_reason, const Usage& usage) {
  json choice = {{"index", 0}, {"finish_reason", nullable(finish_reason)}};
  if (endpoint == Endpoint::chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", a.id},
          {"object", endpoint == Endpoint::chat ? "chat.completion" : "text_completion"},
          {"created", a.created},
          {"model", a.model},
          {"choices", json::array({choice})},
          {"usage", usage.to_json()}};
}

namespace {
json chunk(Endpoint endpoint, const Answer& a, json choice) {
  return {{"id", a.id},
          {"object", endpoint == Endpoint::chat ? "chat.completion.chunk" : "text_completion"},
          {"created", a.created},
          {"model", a.model},
          {"choices", json::array({std::move(choice)})}};
}
}  // namespace

json role_chunk(const Answer& a) {
  return chunk(Endpoint::chat, a,
               {{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}});
}

json text_chunk(Endpoint endpoint, const Answer& a, const std::string& text) {
  if (endpoint == Endpoint::chat) {
    return chunk(endpoint, a, {{"index", 0}, {"delta", {{"content", text}}}, {"finish_reason", nullptr}});
  }
  return chunk(endpoint, a, {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", nullptr}});
}

json final_chunk(Endpoint endpoint, const Answer& a, const std::string& finish_reason,
                 const Usage& usage) {
  json choice = {{"index", 0}, {"finish_reason", nullable(finish_reason)}};
  if (endpoint == Endpoint::chat) {
    choice["delta"] = json::object();
  } else {
    choice["text"] = "";
    choice["logprobs"] = nullptr;
  }
  json j = chunk(endpoint, a, std::move(choice));
  j["usage"] = usage.to_json();
  return j;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + dump(j) + "\n\n"; }

std::string Utf8Joiner::take(std::string_view piece) {
  pending_.append(piece);
  // Find where the last character starts; keep it back if its bytes are not all here yet.
  std::size_t i = pending_.size();
  int back = 0;
  while (i > 0 && back < 4 && (static_cast<unsigned char>(pending_[i - 1]) & 0xC0) == 0x80) {
    i--;
    back++;
  }
  std::size_t complete = pending_.size();
  if (i > 0) {
    const auto lead = static_cast<unsigned char>(pending_[i - 1]);
    const int need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (need > 1 && back + 1 < need) complete = i - 1;
  }
  std::string out = pending_.substr(0, complete);
  pending_.erase(0, complete);
  return out;
}

}  // namespace troupe::cli::openai
