#include "mesh_status.hpp"

#include <algorithm>
#include <vector>

#include "troupe/model/error.hpp"

namespace troupe::cli {

namespace {
nlohmann::json layers_json(const std::optional<LayerRange>& r) {
  return r ? nlohmann::json::array({r->begin, r->end}) : nlohmann::json(nullptr);
}
}  // namespace

wire::Status query_status(net::MeshClient& client, const std::string& peer,
                          std::chrono::milliseconds timeout) {
  client.send(wire::Message{0, 1, wire::StatusRequest{}});
  const wire::Message m = client.receive(timeout);
  const auto* s = std::get_if<wire::Status>(&m.body);
  if (!s) {
    throw RuntimeFailure("peer " + peer + " answered a status request with " +
                         wire::type_name(m.type()));
  }
  return *s;
}

nlohmann::json status_json(const wire::Status& s, bool insecure) {
  nlohmann::json j;
  j["node"] = s.self;
  j["insecure"] = insecure;
  j["term"] = s.term;
  j["coordinator"] = s.coordinator ? nlohmann::json(*s.coordinator) : nlohmann::json(nullptr);
  j["members"] = nlohmann::json::array();
  for (const auto& x : s.members) {
    j["members"].push_back({{"name", x.name}, {"address", x.address}, {"state", x.state},
                            {"layers", layers_json(x.layers)}, {"mem_budget", x.mem_budget},
                            {"base_rss", x.base_rss},
                            {"throughput_gbs", x.throughput}, {"cores", x.cores}, {"arch", x.arch},
                            {"since_seconds", x.since_seconds}});
  }
  j["plan"] = {{"version", s.plan_version}, {"stages", nlohmann::json::array()}};
  for (const auto& st : s.stages) {
    j["plan"]["stages"].push_back(
        {{"node", st.node}, {"address", st.address}, {"layers", {st.layers.begin, st.layers.end}}});
  }
  j["model_layers"] = s.model_layers;
  j["serving"] = s.serving;
  j["problem"] = s.serving ? nlohmann::json(nullptr) : nlohmann::json(s.problem);
  const wire::NodeCounters& c = s.counters;
  j["counters"] = {{"sessions_active", c.sessions_active},
                   {"sessions_total", c.sessions_total},
                   {"tokens_generated", c.tokens_generated},
                   {"stage_positions", c.stage_positions},
                   {"sessions_resumed", c.sessions_resumed},
                   {"positions_kept", c.positions_kept},
                   {"stage_passes", c.stage_passes},
                   {"stage_pass_sessions", c.stage_pass_sessions},
                   {"stage_compute_seconds", c.stage_compute_seconds},
                   {"frames_sent", c.frames_sent},
                   {"bytes_sent", c.bytes_sent},
                   {"frames_received", c.frames_received},
                   {"bytes_received", c.bytes_received},
                   {"hops", c.hops},
                   {"hop_network_seconds", c.hop_seconds},
                   {"frames_dropped", c.frames_dropped},
                   {"rss_bytes", c.rss_bytes},
                   {"peak_rss_bytes", c.peak_rss_bytes}};
  return j;
}

std::vector<const wire::Member*> pipeline_stages(const wire::Status& s) {
  std::vector<const wire::Member*> out;
  for (const auto& m : s.members) {
    if (m.layers && m.state == "alive") out.push_back(&m);
  }
  std::sort(out.begin(), out.end(), [](const wire::Member* a, const wire::Member* b) {
    return std::pair(a->layers->begin, a->layers->end) < std::pair(b->layers->begin, b->layers->end);
  });
  return out;
}

nlohmann::json pipeline_json(const wire::Status& entry,
                             const std::function<std::optional<wire::Status>(const std::string& address)>& ask) {
  const wire::NodeCounters& e = entry.counters;
  nlohmann::json j = {{"hop_network_ms", e.hops ? 1e3 * e.hop_seconds / double(e.hops) : 0.0},
                      {"stages", nlohmann::json::array()}};
  for (const wire::Member* st : pipeline_stages(entry)) {
    nlohmann::json stage = {{"node", st->name}, {"address", st->address}, {"layers", layers_json(st->layers)}};
    const std::optional<wire::Status> s = ask(st->address);
    stage["answered"] = s.has_value();
    if (s) {
      const wire::NodeCounters& c = s->counters;
      stage["positions"] = c.stage_positions;
      stage["ms_per_position"] = c.stage_positions ? 1e3 * c.stage_compute_seconds / double(c.stage_positions) : 0.0;
      stage["rows_per_pass"] = c.stage_passes ? double(c.stage_positions) / double(c.stage_passes) : 0.0;
      stage["sessions_per_pass"] = c.stage_passes ? double(c.stage_pass_sessions) / double(c.stage_passes) : 0.0;
      stage["bytes_sent"] = c.bytes_sent;
      stage["bytes_received"] = c.bytes_received;
      stage["rss_bytes"] = c.rss_bytes;
      stage["peak_rss_bytes"] = c.peak_rss_bytes;
    }
    j["stages"].push_back(std::move(stage));
  }
  return j;
}

}  // namespace troupe::cli
