#include "http_metrics.hpp"

#include <nlohmann/json.hpp>

namespace troupe::cli {

namespace {

void metric(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void line(std::string& out, const std::string& name, double v) {
  out += name + " " + nlohmann::json(v).dump() + "\n";
}

}  // namespace

void HttpMetrics::request(const std::string& path, int status) {
  static const char* const kKnown[] = {
      "/", "/health", "/mesh", "/metrics", "/v1/models", "/v1/completions", "/v1/chat/completions",
      "/v1/responses"};
  std::string label = "other";  // unknown paths share one label, so that scans cannot grow it
  for (const char* k : kKnown) {
    if (path == k) label = k;
  }
  std::lock_guard lock(mutex_);
  requests_[{label, status}]++;
}

void HttpMetrics::completed(const GenerationStats& s, const std::string& finish_reason) {
  std::lock_guard lock(mutex_);
  completions_[finish_reason.empty() ? "unknown" : finish_reason]++;
  prompt_tokens_ += s.prompt_tokens;
  generated_tokens_ += s.generated_tokens;
  decode_tokens_ += std::max(s.generated_tokens - 1, 0);
  decode_seconds_ += s.decode_ms / 1000;
  first_token_seconds_ += s.first_token_ms / 1000;
  if (s.generated_tokens > 1) last_tokens_per_s_ = s.decode_tokens_per_s();
}

std::string HttpMetrics::render(const std::optional<wire::Status>& status, ConnectionCounts connections) {
  std::string out;
  render_door(out, connections);
  if (status) render_node(out, *status);
  return out;
}

void HttpMetrics::render_door(std::string& out, ConnectionCounts connections) {
  std::lock_guard lock(mutex_);
  metric(out, "troupe_http_requests_total", "counter", "HTTP requests answered, by path and status");
  for (const auto& [key, n] : requests_) {
    line(out,
         "troupe_http_requests_total{path=\"" + key.first + "\",code=\"" + std::to_string(key.second) + "\"}",
         static_cast<double>(n));
  }
  metric(out, "troupe_http_connections_open", "gauge", "HTTP connections open at this node's door");
  line(out, "troupe_http_connections_open", static_cast<double>(connections.open));
  metric(out, "troupe_http_connections_refused_total", "counter",
         "HTTP connections answered 503 at once: the door had its limit of connections open");
  line(out, "troupe_http_connections_refused_total", static_cast<double>(connections.refused));
  metric(out, "troupe_active_sessions", "gauge", "Completions in flight through this node's HTTP API");
  line(out, "troupe_active_sessions", active.load());
  metric(out, "troupe_completions_total", "counter", "Completions finished, by finish reason");
  for (const auto& [reason, n] : completions_) {
    line(out, "troupe_completions_total{finish_reason=\"" + reason + "\"}", static_cast<double>(n));
  }
  metric(out, "troupe_prompt_tokens_total", "counter", "Prompt tokens of finished completions");
  line(out, "troupe_prompt_tokens_total", static_cast<double>(prompt_tokens_));
  metric(out, "troupe_tokens_generated_total", "counter", "Tokens sampled by finished completions");
  line(out, "troupe_tokens_generated_total", static_cast<double>(generated_tokens_));
  metric(out, "troupe_decode_tokens_total", "counter",
         "Tokens sampled after each completion's first (the ones decode_seconds_total covers)");
  line(out, "troupe_decode_tokens_total", static_cast<double>(decode_tokens_));
  metric(out, "troupe_decode_seconds_total", "counter", "Time from first to last sampled token, summed");
  line(out, "troupe_decode_seconds_total", decode_seconds_);
  metric(out, "troupe_first_token_seconds_total", "counter",
         "Time to the first token (prompt included), summed");
  line(out, "troupe_first_token_seconds_total", first_token_seconds_);
  metric(out, "troupe_decode_tokens_per_second", "gauge", "Decode speed of the last finished completion");
  line(out, "troupe_decode_tokens_per_second", last_tokens_per_s_);
}

void HttpMetrics::render_node(std::string& out, const wire::Status& status) {
  metric(out, "troupe_mesh_serving", "gauge", "1 when the stages cover every layer");
  line(out, "troupe_mesh_serving", status.serving ? 1 : 0);
  metric(out, "troupe_mesh_members", "gauge", "Members of the mesh as this node sees them, by state");
  std::map<std::string, int> states{{"alive", 0}, {"suspect", 0}, {"dead", 0}, {"left", 0}};
  for (const auto& m : status.members) states[m.state]++;
  for (const auto& [state, n] : states) line(out, "troupe_mesh_members{state=\"" + state + "\"}", n);
  const wire::NodeCounters& c = status.counters;
  metric(out, "troupe_node_sessions_active", "gauge",
         "Sessions in flight that entered through this node (any door)");
  line(out, "troupe_node_sessions_active", static_cast<double>(c.sessions_active));
  metric(out, "troupe_node_sessions_total", "counter", "Sessions that entered through this node (any door)");
  line(out, "troupe_node_sessions_total", static_cast<double>(c.sessions_total));
  metric(out, "troupe_node_tokens_generated_total", "counter",
         "Tokens sampled for sessions that entered here");
  line(out, "troupe_node_tokens_generated_total", static_cast<double>(c.tokens_generated));
  metric(out, "troupe_stage_compute_seconds_total", "counter", "Time this node's stage spent computing");
  line(out, "troupe_stage_compute_seconds_total", c.stage_compute_seconds);
  metric(out, "troupe_stage_positions_total", "counter", "Positions this node's stage computed");
  line(out, "troupe_stage_positions_total", static_cast<double>(c.stage_positions));
  metric(out, "troupe_stage_passes_total", "counter",
         "Batched passes this node's stage ran through its layers (positions / passes: rows a pass)");
  line(out, "troupe_stage_passes_total", static_cast<double>(c.stage_passes));
  metric(out, "troupe_stage_pass_sessions_total", "counter",
         "Sessions those passes ran, summed (/ passes: sessions batched a pass)");
  line(out, "troupe_stage_pass_sessions_total", static_cast<double>(c.stage_pass_sessions));
  metric(out, "troupe_stage_sessions_resumed_total", "counter",
         "Re-routed sessions this node's stage kept, on the new route with the same layers");
  line(out, "troupe_stage_sessions_resumed_total", static_cast<double>(c.sessions_resumed));
  metric(out, "troupe_stage_positions_kept_total", "counter",
         "Positions of re-routed sessions this node's stage kept rather than run again");
  line(out, "troupe_stage_positions_kept_total", static_cast<double>(c.positions_kept));
  metric(out, "troupe_network_frames_total", "counter", "Frames this node sent and received");
  line(out, "troupe_network_frames_total{direction=\"sent\"}", static_cast<double>(c.frames_sent));
  line(out, "troupe_network_frames_total{direction=\"received\"}", static_cast<double>(c.frames_received));
  metric(out, "troupe_network_bytes_total", "counter", "Bytes of frames this node sent and received");
  line(out, "troupe_network_bytes_total{direction=\"sent\"}", static_cast<double>(c.bytes_sent));
  line(out, "troupe_network_bytes_total{direction=\"received\"}", static_cast<double>(c.bytes_received));
  metric(out, "troupe_hops_total", "counter",
         "Network hops of the decode steps this node's sessions measured (entry to stages and back)");
  line(out, "troupe_hops_total", static_cast<double>(c.hops));
  metric(
      out, "troupe_hop_network_seconds_total", "counter",
      "Those steps' round trips less the stages' compute time: over troupe_hops_total, the time a hop costs");
  line(out, "troupe_hop_network_seconds_total", c.hop_seconds);
  metric(out, "troupe_frames_dropped_total", "counter",
         "Frames this node received and dropped: undecodable, from a sender with no say over their session, "
         "for a session it does not hold, or of a kind it does not take");
  line(out, "troupe_frames_dropped_total", static_cast<double>(c.frames_dropped));
  metric(out, "troupe_mesh_stage_layers", "gauge", "Layers each stage of the plan runs");
  for (const auto& st : status.stages) {
    line(out,
         "troupe_mesh_stage_layers{node=\"" + st.node + "\",first=\"" + std::to_string(st.layers.begin) +
             "\"}",
         st.layers.end - st.layers.begin);
  }
}

}  // namespace troupe::cli
