#include "mesh_status.hpp"

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
                   {"stage_compute_seconds", c.stage_compute_seconds},
                   {"frames_sent", c.frames_sent},
                   {"bytes_sent", c.bytes_sent},
                   {"frames_received", c.frames_received},
                   {"bytes_received", c.bytes_received},
                   {"hops", c.hops},
                   {"hop_network_seconds", c.hop_seconds},
                   {"frames_dropped", c.frames_dropped}};
  return j;
}

}  // namespace troupe::cli
