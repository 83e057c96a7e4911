#include "openai_api.hpp"

// The answers: whole JSON, and the server-sent events of a streamed one.
namespace troupe::cli::openai {

using nlohmann::json;

namespace {

constexpr std::string_view kSseDone = "data: [DONE]\n\n";

json nullable(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

}  // namespace

json ApiError::to_json() const {
  return {{"error", {{"message", message}, {"type", type}, {"param", nullable(param)},
                     {"code", nullable(code)}}}};
}

json Usage::to_json(Endpoint endpoint) const {
  if (endpoint == Endpoint::responses) {
    return {{"input_tokens", prompt_tokens},
            {"output_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens}};
  }
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {

// The Responses API's answer: one assistant message. An empty finish reason is a response still
// being written (no usage yet); "length" is one cut short by max_output_tokens.
json response_json(const Answer& a, const std::string& text, const std::string& finish_reason,
                   const Usage& usage) {
  const bool over = !finish_reason.empty();
  const bool cut = finish_reason == "length";
  const std::string status = !over ? "in_progress" : cut ? "incomplete" : "completed";
  json output = json::array();
  if (over) {
    output.push_back({{"type", "message"}, {"id", message_id(a)}, {"status", status}, {"role", "assistant"},
                      {"content", {{{"type", "output_text"}, {"text", text}, {"annotations", json::array()}}}}});
  }
  return {{"id", a.id},
          {"object", "response"},
          {"created_at", a.created},
          {"status", status},
          {"model", a.model},
          {"output", std::move(output)},
          {"usage", over ? usage.to_json(Endpoint::responses) : json(nullptr)},
          {"incomplete_details", cut ? json{{"reason", "max_output_tokens"}} : json(nullptr)},
          {"error", nullptr}};
}

}  // namespace

std::string message_id(const Answer& a) { return "msg_" + a.id.substr(a.id.find('_') + 1); }

json completion_json(Endpoint endpoint, const Answer& a, const std::string& text,
                     const std::string& finish_reason, const Usage& usage) {
  if (endpoint == Endpoint::responses) return response_json(a, text, finish_reason, usage);
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
          {"usage", usage.to_json(endpoint)}};
}

json EventStream::chunk(json choice) const {
  json c = {{"id", answer_.id},
            {"object", endpoint_ == Endpoint::chat ? "chat.completion.chunk" : "text_completion"},
            {"created", answer_.created},
            {"model", answer_.model},
            {"choices", json::array({std::move(choice)})}};
  if (include_usage_) c["usage"] = nullptr;
  return c;
}

std::string EventStream::event(const char* type, json data) {
  data["type"] = type;
  data["sequence_number"] = sequence_++;
  return std::string("event: ") + type + "\n" + sse_event(data);
}

// The Responses API opens the response, its message and the message's one text part.
std::string EventStream::start() {
  if (endpoint_ == Endpoint::chat) {
    return sse_event(chunk({{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}}));
  }
  if (endpoint_ == Endpoint::completions) return "";
  const json item = {{"type", "message"}, {"id", message_id(answer_)}, {"status", "in_progress"},
                     {"role", "assistant"}, {"content", json::array()}};
  const json at = {{"item_id", message_id(answer_)}, {"output_index", 0}, {"content_index", 0}};
  json part = at;
  part["part"] = {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}};
  const json in_progress = {{"response", response_json(answer_, "", "", {})}};
  // One statement each: the sequence numbers follow the order of the calls.
  std::string out = event("response.created", in_progress);
  out += event("response.in_progress", in_progress);
  out += event("response.output_item.added", {{"output_index", 0}, {"item", item}});
  out += event("response.content_part.added", part);
  return out;
}

std::string EventStream::text(const std::string& piece) {
  text_ += piece;
  switch (endpoint_) {
    case Endpoint::chat:
      return sse_event(chunk({{"index", 0}, {"delta", {{"content", piece}}}, {"finish_reason", nullptr}}));
    case Endpoint::completions:
      return sse_event(chunk({{"index", 0}, {"text", piece}, {"logprobs", nullptr}, {"finish_reason", nullptr}}));
    case Endpoint::responses:
      return event("response.output_text.delta", {{"item_id", message_id(answer_)}, {"output_index", 0},
                                                   {"content_index", 0}, {"delta", piece}});
  }
  return "";
}

// Chat and completions: the finish reason, the usage when asked for, then [DONE]. The Responses
// API: the text, its part and its message closed, then the whole response.
std::string EventStream::finish(const std::string& finish_reason, const Usage& usage) {
  if (endpoint_ != Endpoint::responses) {
    json choice = {{"index", 0}, {"finish_reason", nullable(finish_reason)}};
    if (endpoint_ == Endpoint::chat) {
      choice["delta"] = json::object();
    } else {
      choice["text"] = "";
      choice["logprobs"] = nullptr;
    }
    std::string out = sse_event(chunk(std::move(choice)));
    if (include_usage_) {
      json counted = chunk(nullptr);
      counted["choices"] = json::array();
      counted["usage"] = usage.to_json(endpoint_);
      out += sse_event(counted);
    }
    out += kSseDone;
    return out;
  }
  const json whole = response_json(answer_, text_, finish_reason, usage);
  const json& item = whole["output"][0];
  const json at = {{"item_id", message_id(answer_)}, {"output_index", 0}, {"content_index", 0}};
  json text_done = at, part_done = at;
  text_done["text"] = text_;
  part_done["part"] = item["content"][0];
  std::string out = event("response.output_text.done", text_done);
  out += event("response.content_part.done", part_done);
  out += event("response.output_item.done", {{"output_index", 0}, {"item", item}});
  out += event(whole["status"] == "completed" ? "response.completed" : "response.incomplete", {{"response", whole}});
  return out;
}

std::string EventStream::error(const ApiError& e) {
  if (endpoint_ != Endpoint::responses) {
    std::string out = sse_event(e.to_json());
    out += kSseDone;  // appended, not `a + b`: GCC 12 for aarch64 warns a false -Wrestrict on that
    return out;
  }
  const json j = e.to_json();
  const json& body = j["error"];
  return event("error", {{"code", body["code"]}, {"message", body["message"]}, {"param", body["param"]}});
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
