// NodeActor: who is in the mesh, which stages serve, and the sessions that entered here.
//
// Membership in this static issue: every node says hello (its name, address and layers, and the
// peers it knows of) to every node it knows of, once a second. A peer is alive from its first
// hello until its connection breaks or it stays silent for kPeerSilence; the peers a hello lists
// are greeted in turn, so joining any one node makes a node known to all.
#include <spdlog/spdlog.h>

#include <cctype>
#include <map>

#include "actors.hpp"
#include "messages.hpp"
#include "troupe/actors/plan.hpp"

namespace troupe::actors {

namespace {

struct Peer {
  enum class State { pending, alive, dead };
  std::string name;
  std::optional<LayerRange> layers;
  State state = State::pending;  // pending: known of, not heard from yet
  Clock::time_point last_heard{};
  bool warned_model = false;
};

const char* state_name(Peer::State s) {
  switch (s) {
    case Peer::State::alive: return "alive";
    case Peer::State::dead: return "dead";
    case Peer::State::pending: return "pending";
  }
  return "?";
}

struct EntrySession {
  caf::actor actor;
  std::string client_route;
  std::vector<std::string> stages;  // addresses
};

struct NodeState {
  std::map<std::string, Peer> peers;  // by address; never this node
  Plan plan;
  uint64_t plan_version = 0;
  std::map<uint64_t, EntrySession> sessions;
  uint32_t next_session = 1;
  uint64_t hello_seq = 0;
};

std::string describe(const Plan& plan) {
  std::string s;
  for (const auto& st : plan.stages) {
    s += (s.empty() ? "" : ", ") + st.name + " " + format_range(st.layers);
  }
  return s.empty() ? "no stages" : s;
}

// HOST:PORT, as --listen takes it; peers learn addresses from hellos, which anyone may send.
bool plausible_address(const std::string& a) {
  const auto colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == a.size() || a.size() - colon > 6) {
    return false;
  }
  for (std::size_t i = colon + 1; i < a.size(); i++) {
    if (a[i] < '0' || a[i] > '9') return false;
  }
  for (char c : a.substr(0, colon)) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '[' || c == ']' || c == ':')) {
      return false;
    }
  }
  return true;
}

// Session ids name the entry node in their high half, so ids from different entries never meet
// at a stage; no randomness is needed.
uint64_t session_id(const std::string& address, uint32_t counter) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : address) h = (h ^ c) * 16777619u;
  return (uint64_t(h) << 32) | counter;
}

}  // namespace

caf::behavior node_actor(caf::event_based_actor* self, const NodeContext* node,
                         caf::actor transport, caf::actor stage, std::vector<std::string> joins) {
  auto state = std::make_shared<NodeState>();
  const int n_layers = node->model->config.n_layers;
  const Routes routes{transport, caf::actor_cast<caf::actor>(self), stage};

  auto send = [=](const std::string& address, wire::Body body, uint64_t session = 0) {
    send_to(self, node, routes, address, wire::Message{session, ++state->hello_seq, std::move(body)});
  };
  auto reply = [=](const std::string& route, wire::Body body, uint64_t session = 0) {
    self->send(transport, reply_atom::value, route, wire::Message{session, 0, std::move(body)});
  };
  auto hello = [=] {
    wire::Hello h;
    h.self = {node->name, node->address, node->layers};
    h.model = node->model_fingerprint;
    h.model_layers = n_layers;
    for (const auto& [address, p] : state->peers) {
      if (p.state == Peer::State::alive && h.peers.size() < wire::kMaxPeers) {
        h.peers.push_back({p.name, address, p.layers});
      }
    }
    return h;
  };

  auto update_plan = [=] {
    std::vector<StageHolder> holders;
    if (node->layers) holders.push_back({node->name, node->address, *node->layers});
    for (const auto& [address, p] : state->peers) {
      if (p.state == Peer::State::alive && p.layers) holders.push_back({p.name, address, *p.layers});
    }
    Plan plan = make_static_plan(std::move(holders), n_layers);
    if (plan.stages == state->plan.stages && plan.complete == state->plan.complete &&
        state->plan_version > 0) {
      return;
    }
    state->plan = std::move(plan);
    state->plan_version++;
    if (state->plan.complete) {
      spdlog::info("plan v{}: {}; serving", state->plan_version, describe(state->plan));
    } else {
      spdlog::info("plan v{}: {}; not serving: {}", state->plan_version, describe(state->plan),
                   state->plan.problem);
    }
  };

  auto lose = [=](const std::string& address, const std::string& why) {
    auto it = state->peers.find(address);
    if (it == state->peers.end() || it->second.state != Peer::State::alive) return;
    Peer& p = it->second;
    p.state = Peer::State::dead;
    spdlog::warn("peer {} ({}) lost: {}", p.name, address, why);
    update_plan();
    if (stage) self->send(stage, peer_lost_atom::value, address);
    for (const auto& [id, s] : state->sessions) {
      if (std::find(s.stages.begin(), s.stages.end(), address) != s.stages.end()) {
        self->send(s.actor, peer_lost_atom::value, address, p.name);
      }
    }
  };

  auto on_hello = [=](const wire::Hello& h) {
    const std::string& address = h.self.address;
    if (address == node->address) return;
    if (!plausible_address(address)) {
      spdlog::warn("dropped a hello from '{}': not a HOST:PORT address", address);
      return;
    }
    Peer& p = state->peers[address];
    if (h.model != node->model_fingerprint || h.model_layers != n_layers) {
      if (!p.warned_model) {
        spdlog::warn("peer {} ({}) runs another model ({}; this node: {}); ignored", h.self.name,
                     address, h.model, node->model_fingerprint);
        p.warned_model = true;
      }
      return;
    }
    const bool was_alive = p.state == Peer::State::alive;
    const bool changed = !was_alive || p.layers != h.self.layers || p.name != h.self.name;
    p.name = h.self.name;
    p.layers = h.self.layers;
    p.state = Peer::State::alive;
    p.last_heard = node->clock->now();
    if (!was_alive) {
      spdlog::info("peer {} ({}) joined, layers {}", p.name, address,
                   p.layers ? format_range(*p.layers) : "none");
      send(address, hello());  // so that it need not wait for our next heartbeat
    }
    for (const auto& q : h.peers) {
      if (q.address != node->address && plausible_address(q.address) && !state->peers.count(q.address) &&
          state->peers.size() < wire::kMaxPeers) {
        state->peers[q.address];  // pending until it says hello itself
        send(q.address, hello());
      }
    }
    if (changed) update_plan();
  };

  auto status = [=] {
    wire::Status s;
    s.self = node->name;
    s.term = 0;
    s.members.push_back({node->name, node->address, "alive", node->layers});
    for (const auto& [address, p] : state->peers) {
      if (p.state == Peer::State::pending) continue;
      s.members.push_back({p.name, address, state_name(p.state), p.layers});
    }
    s.plan_version = state->plan_version;
    for (const auto& st : state->plan.stages) s.stages.push_back({st.name, st.address, st.layers});
    s.model_layers = n_layers;
    s.serving = state->plan.complete;
    s.problem = state->plan.problem;
    return s;
  };

  auto generate = [=](const std::string& route, const wire::GenerateRequest& request) {
    if (!state->plan.complete) {
      reply(route, wire::Error{1, "the mesh at " + node->name + " cannot serve yet: " +
                                      state->plan.problem});
      return;
    }
    if (state->sessions.size() >= std::size_t(wire::kMaxSessions)) {
      reply(route, wire::Error{1, node->name + " is busy: " + std::to_string(wire::kMaxSessions) +
                                      " sessions in flight"});
      return;
    }
    const uint64_t id = session_id(node->address, state->next_session++);
    std::vector<wire::RouteStage> route_stages;
    EntrySession entry;
    for (const auto& st : state->plan.stages) {
      route_stages.push_back({st.address, st.layers});
      entry.stages.push_back(st.address);
    }
    entry.client_route = route;
    entry.actor = self->spawn<caf::linked>(session_actor, node, routes, id, route, request,
                                           std::move(route_stages));
    state->sessions.emplace(id, std::move(entry));
  };

  auto on_message = [=](const std::string& route, const wire::Message& message) {
    using T = wire::MessageType;
    switch (message.type()) {
      case T::hello:
        on_hello(std::get<wire::Hello>(message.body));
        return;
      case T::generate:
        generate(route, std::get<wire::GenerateRequest>(message.body));
        return;
      case T::status_request:
        reply(route, status());
        return;
      case T::sampled:
      case T::error: {
        auto it = state->sessions.find(message.session);
        if (it == state->sessions.end()) {
          spdlog::warn("dropped a {} frame for unknown session {:x}", wire::type_name(message.type()),
                       message.session);
          return;
        }
        self->send(it->second.actor, wire_atom::value, route, message);
        return;
      }
      case T::session_start:
      case T::step:
      case T::activations:
      case T::session_end:
        spdlog::warn("dropped a {} frame: this node holds no stage", wire::type_name(message.type()));
        return;
      default:
        spdlog::warn("dropped an unexpected {} frame", wire::type_name(message.type()));
        return;
    }
  };

  self->send(self, init_atom::value);
  return {
      [=](init_atom) {
        for (const auto& address : joins) {
          if (address == node->address) continue;
          state->peers[address];
          send(address, hello());
        }
        update_plan();
        self->delayed_send(self, kHeartbeat, tick_atom::value);
      },
      [=](tick_atom) {
        const auto now = node->clock->now();
        std::vector<std::string> silent;
        for (const auto& [address, p] : state->peers) {
          if (p.state == Peer::State::alive && now - p.last_heard > kPeerSilence) silent.push_back(address);
        }
        for (const auto& address : silent) lose(address, "silent for too long");
        const wire::Hello h = hello();
        for (const auto& [address, p] : state->peers) {
          if (p.state != Peer::State::dead) send(address, h);
        }
        self->delayed_send(self, kHeartbeat, tick_atom::value);
      },
      [=](wire_atom, const std::string& route, const wire::Message& message) {
        on_message(route, message);
      },
      [=](peer_lost_atom, const std::string& address) { lose(address, "its connection broke"); },
      [=](peer_up_atom, const std::string& address) {
        // A peer that comes back (or comes up late) hears from us at once.
        if (state->peers.count(address)) send(address, hello());
      },
      [=](route_gone_atom, const std::string& route) {
        for (const auto& [id, s] : state->sessions) {
          if (s.client_route == route) self->send(s.actor, route_gone_atom::value);
        }
      },
      [=](ended_atom, uint64_t id) { state->sessions.erase(id); },
  };
}

}  // namespace troupe::actors
