// NodeActor: hosts this node's part of the mesh protocol (discovery::Mesh) on the system clock
// and the ZeroMQ transport, and acts on what it decides: the stage loads the layers the plan
// gives this node, sessions that entered here take the live route, and a session whose stage is
// lost or moves gets a new route.
#include <spdlog/spdlog.h>

#include <map>

#include "actors.hpp"
#include "messages.hpp"

namespace troupe::actors {

namespace {

using discovery::format_range;

struct EntrySession {
  caf::actor actor;
  std::string client_route;
  std::vector<std::string> stages;  // the addresses of its current route
  bool waiting = false;             // for a route
};

struct NodeState {
  std::unique_ptr<discovery::Mesh> mesh;
  std::map<uint64_t, EntrySession> sessions;  // by base id (attempt bits clear)
  uint32_t next_session = 1;
  uint64_t seq = 0;
  std::optional<LayerRange> asked;   // the range last asked of the stage
  std::vector<wire::RouteStage> route;
  uint64_t plan_version = 0;
  discovery::Leadership leadership;
  bool serving_logged = false;
};

std::string describe(const std::vector<wire::RouteStage>& route, const discovery::Mesh& mesh) {
  std::string s;
  for (const auto& st : route) {
    s += (s.empty() ? "" : ", ") + mesh.name_of(st.address) + " " + format_range(st.layers);
  }
  return s.empty() ? "no stages" : s;
}

// Session ids name the entry node's process (its address and instance) in their high half, so
// ids from different entries never meet at a stage, nor those of a restarted entry the ids of
// its earlier life, which the stages remember as ended (the simulator caught that: a restarted
// entry's first session was dropped as long over). No randomness is needed.
uint64_t session_id(const std::string& address, uint64_t instance, uint32_t counter) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : address) h = (h ^ c) * 16777619u;
  for (int i = 0; i < 8; i++) h = (h ^ uint8_t(instance >> (8 * i))) * 16777619u;
  return (uint64_t(h) << 32) | (counter & ((1u << kAttemptShift) - 1));
}

}  // namespace

caf::behavior node_actor(caf::event_based_actor* self, const NodeContext* node,
                         caf::actor transport, caf::actor stage) {
  auto state = std::make_shared<NodeState>();
  const int n_layers = node->config->n_layers;
  const Routes routes{transport, caf::actor_cast<caf::actor>(self), stage};
  state->mesh = std::make_unique<discovery::Mesh>(node->member, node->mesh, node->seed,
                                                  node->clock->now(), *node->sim_hook);

  auto reply = [=](const std::string& route, wire::Body body, uint64_t session = 0) {
    self->send(transport, reply_atom::value, route, wire::Message{session, 0, std::move(body)});
  };
  auto flush = [=] {
    for (auto& out : state->mesh->take_outgoing()) {
      send_to(self, node, routes, out.to, wire::Message{0, ++state->seq, std::move(out.body)});
    }
  };

  // After every event: log what changed, move the stage to its assignment, and hand the live
  // route to the sessions that wait for one.
  auto react = [=] {
    discovery::Mesh& m = *state->mesh;
    for (const auto& w : m.take_warnings()) spdlog::warn("{}", w);
    for (const auto& c : m.take_changes()) {
      const std::string who = m.name_of(c.address) + " (" + c.address + ")";
      if (!c.before) {
        spdlog::info("member {} joined", who);
      } else if (*c.before != c.after) {
        spdlog::info("member {} is {}", who, wire::state_name(c.after));
      }
      // The rules for who hears of it: discovery/session.hpp.
      if (discovery::stage_forgets_on(c.after)) self->send(stage, peer_lost_atom::value, c.address);
      if (!discovery::entry_reroutes_on(c.after)) continue;
      for (auto& [id, s] : state->sessions) {
        if (std::find(s.stages.begin(), s.stages.end(), c.address) != s.stages.end()) {
          self->send(s.actor, peer_lost_atom::value, c.address, m.name_of(c.address));
        }
      }
    }
    if (!(m.leadership() == state->leadership)) {
      state->leadership = m.leadership();
      spdlog::info("term {}: coordinator {}{}", state->leadership.term,
                   m.name_of(state->leadership.coordinator), m.is_coordinator() ? " (this node)" : "");
    }
    if (m.plan().version != state->plan_version) {
      state->plan_version = m.plan().version;
      std::string s;
      for (const auto& st : m.plan().stages) s += (s.empty() ? "" : ", ") + st.node + " " + format_range(st.layers);
      spdlog::info("plan v{}: {}{}", m.plan().version, s.empty() ? "no stages" : s,
                   m.plan().problem.empty() ? "" : "; " + m.plan().problem);
    }
    const auto want = m.assignment();
    if (want != state->asked) {
      state->asked = want;
      self->send(stage, load_atom::value, want ? want->begin : 0, want ? want->end : 0);
    }
    // The live route, compared in place (the mesh keeps it between changes; this runs after
    // every event).
    const auto& live = m.route();
    std::vector<wire::RouteStage>& route = state->route;
    const bool moved = live.size() != route.size() ||
                       !std::equal(live.begin(), live.end(), route.begin(), [](const auto& a, const auto& b) {
                         return a.address == b.address && a.layers == b.layers;
                       });
    if (moved) {
      route.clear();
      for (const auto& st : live) route.push_back({st.address, st.layers});
      if (route.empty()) {
        spdlog::info("not serving: {}", m.route_problem());
      } else {
        spdlog::info("serving through {}", describe(route, m));
      }
    }
    if (!route.empty()) {
      for (auto& [id, s] : state->sessions) {
        if (!s.waiting) continue;
        s.waiting = false;
        s.stages.clear();
        for (const auto& st : route) s.stages.push_back(st.address);
        self->send(s.actor, route_atom::value, route, std::string());
      }
    }
    flush();
    node->sim_hook->observe(m);
  };

  auto status = [=] {
    const discovery::Mesh& m = *state->mesh;
    wire::Status s;
    s.self = node->name;
    s.term = m.leadership().term;
    if (!m.leadership().coordinator.empty()) s.coordinator = m.name_of(m.leadership().coordinator);
    for (const auto& v : m.members()) {
      if (s.members.size() >= wire::kMaxPeers) break;
      wire::Member x;
      x.name = v.info.name;
      x.address = v.info.address;
      x.state = v.state == wire::MemberState::left ? "dead" : wire::state_name(v.state);
      x.layers = v.info.layers;
      x.mem_budget = v.info.mem_budget;
      x.throughput = v.info.throughput;
      x.cores = v.info.cores;
      x.arch = v.info.arch;
      s.members.push_back(std::move(x));
    }
    s.plan_version = m.plan().version;
    s.stages = m.plan().stages;
    s.model_layers = n_layers;
    s.serving = !state->route.empty();
    s.problem = s.serving ? std::string() : m.route_problem();
    const NodeMetrics& x = *node->metrics;
    wire::NodeCounters& c = s.counters;
    c.sessions_active = state->sessions.size();
    c.sessions_total = x.sessions_total.load();
    c.tokens_generated = x.tokens_generated.load();
    c.stage_positions = x.stage_positions.load();
    c.stage_compute_seconds = double(x.stage_compute_ns.load()) / 1e9;
    const auto traffic = node->traffic();
    c.frames_sent = traffic[0];
    c.bytes_sent = traffic[1];
    c.frames_received = traffic[2];
    c.bytes_received = traffic[3];
    c.hops = x.hops.load();
    c.hop_seconds = double(x.hop_ns.load()) / 1e9;
    return s;
  };

  auto generate = [=](const std::string& route, const wire::GenerateRequest& request) {
    // No live route while the mesh re-plans (stages loading): the session waits for one, as a
    // re-routed session does. When no plan could cover the model, there is nothing to wait for.
    switch (discovery::admit(*state->mesh, state->sessions.size())) {
      case discovery::Admission::cannot_cover:
        reply(route, wire::Error{1, "the mesh at " + node->name + " cannot serve yet: " +
                                        state->mesh->route_problem()});
        return;
      case discovery::Admission::busy:
        reply(route, wire::Error{1, node->name + " is busy: " + std::to_string(wire::kMaxSessions) +
                                        " sessions in flight"});
        return;
      case discovery::Admission::serve:
      case discovery::Admission::wait:  // the session waits for a route (an empty one)
        break;
    }
    const uint64_t id = session_id(node->address, node->member.instance, state->next_session++);
    EntrySession entry;
    for (const auto& st : state->route) entry.stages.push_back(st.address);
    entry.client_route = route;
    entry.actor = self->spawn<caf::linked>(session_actor, node, routes, id, route, request, state->route);
    state->sessions[id] = std::move(entry);
    node->metrics->sessions_total.fetch_add(1, std::memory_order_relaxed);
  };

  auto on_message = [=](const std::string& route, const wire::Message& message) {
    using T = wire::MessageType;
    const auto now = node->clock->now();
    switch (message.type()) {
      case T::gossip:
        state->mesh->receive(std::get<wire::Gossip>(message.body), now);
        react();
        return;
      case T::plan:
        state->mesh->receive(std::get<wire::PlanAnnounce>(message.body), now);
        react();
        return;
      case T::generate:
        generate(route, std::get<wire::GenerateRequest>(message.body));
        return;
      case T::status_request:
        reply(route, status());
        return;
      case T::sampled:
      case T::error: {
        auto it = state->sessions.find(message.session & ~kAttemptMask);
        if (it == state->sessions.end()) {
          spdlog::warn("dropped a {} frame for unknown session {:x}", wire::type_name(message.type()),
                       message.session);
          return;
        }
        self->send(it->second.actor, wire_atom::value, route, message);
        return;
      }
      default:
        spdlog::warn("dropped an unexpected {} frame", wire::type_name(message.type()));
        return;
    }
  };

  self->send(self, init_atom::value);
  return {
      [=](init_atom) {
        state->mesh->join(node->joins, node->clock->now());
        react();
        self->delayed_send(self, kMeshTick, tick_atom::value);
      },
      [=](tick_atom) {
        state->mesh->tick(node->clock->now());
        react();
        self->delayed_send(self, kMeshTick, tick_atom::value);
      },
      [=](wire_atom, const std::string& route, const wire::Message& message) {
        on_message(route, message);
      },
      [=](loaded_atom, int begin, int end) {
        state->mesh->set_loaded(end > begin ? std::optional<LayerRange>(LayerRange{begin, end})
                                            : std::nullopt);
        react();
      },
      [=](reroute_atom, uint64_t id) {
        auto it = state->sessions.find(id);
        if (it == state->sessions.end()) return;
        if (discovery::admit(*state->mesh, 0) == discovery::Admission::cannot_cover) {
          // Nothing to wait for (say, a static mesh whose pinned stage is gone).
          self->send(it->second.actor, route_atom::value, std::vector<wire::RouteStage>{},
                     state->mesh->route_problem());
          return;
        }
        it->second.waiting = true;
        react();  // hands over the live route at once when there is one
      },
      [=](peer_lost_atom, const std::string& address) {
        state->mesh->connection_lost(address, node->clock->now());
        react();
      },
      [=](peer_up_atom, const std::string&) {},
      [=](discovered_atom, const std::string& address) {
        // Heard of on the LAN: joined as if named by --join (once; gossip does the rest).
        if (!state->mesh->membership().members().count(address)) {
          state->mesh->join({address}, node->clock->now());
          react();
        }
      },
      [=](route_gone_atom, const std::string& route) {
        for (const auto& [id, s] : state->sessions) {
          if (s.client_route == route) self->send(s.actor, route_gone_atom::value);
        }
      },
      [=](ended_atom, uint64_t id) { state->sessions.erase(id & ~kAttemptMask); },
      [=](leave_atom) {
        state->mesh->leave(node->clock->now());
        flush();
      },
  };
}

}  // namespace troupe::actors
