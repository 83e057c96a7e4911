#include "node_actor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "session_actor.hpp"
#include "troupe/discovery/session.hpp"

namespace troupe::actors {

namespace {

using discovery::format_range;

std::string describe(const std::vector<wire::RouteStage>& route, const discovery::Mesh& mesh) {
  std::string s;
  for (const auto& st : route) s += (s.empty() ? "" : ", ") + mesh.name_of(st.address) + " " + format_range(st.layers);
  return s.empty() ? "no stages" : s;
}

}  // namespace

NodeActor::behavior_type node_actor(NodeActor::stateful_pointer<NodeState> self, const NodeContext* node,
                                    TransportActor transport, StageActor stage) {
  return self->state.behavior(node, std::move(transport), std::move(stage));
}

NodeActor::behavior_type NodeState::behavior(const NodeContext* node, TransportActor transport, StageActor stage) {
  node_ = node;
  routes_.transport = std::move(transport);
  routes_.stage = std::move(stage);
  routes_.node = caf::actor_cast<NodeActor>(self_);
  mesh_ = std::make_unique<discovery::Mesh>(node_->member, node_->mesh, node_->seed, node_->clock->now(),
                                            *node_->sim_hook);
  self_->send(routes_.node, init_atom::value);
  return {
      [this](init_atom) { on_init(); },
      [this](tick_atom) { on_tick(); },
      [this](wire_atom, const Origin& from, const wire::Message& message) { on_wire(from, message); },
      [this](loaded_atom, int begin, int end) { on_loaded(begin, end); },
      [this](reroute_atom, uint64_t id) { on_reroute(id); },
      [this](ended_atom, uint64_t id) { on_ended(id); },
      [this](peer_lost_atom, const std::string& address) { on_peer_lost(address); },
      [this](route_gone_atom, const std::string& route) { on_route_gone(route); },
      [this](discovered_atom, const std::string& address) { on_discovered(address); },
      [this](leave_atom) { on_leave(); },
  };
}

// --- the mesh --------------------------------------------------------------------------------------

void NodeState::on_init() {
  mesh_->join(node_->joins, node_->clock->now());
  react();
  self_->delayed_send(routes_.node, kMeshTick, tick_atom::value);
}

void NodeState::on_tick() {
  mesh_->tick(node_->clock->now());
  react();
  give_up_uncovered();
  self_->delayed_send(routes_.node, kMeshTick, tick_atom::value);
}

void NodeState::on_loaded(int begin, int end) {
  mesh_->set_loaded(end > begin ? std::optional<LayerRange>(LayerRange{begin, end}) : std::nullopt);
  react();
}

void NodeState::on_peer_lost(const std::string& address) {
  mesh_->connection_lost(address, node_->clock->now());
  react();
}

// Heard of on the LAN: joined as if named by --join (once; gossip does the rest).
void NodeState::on_discovered(const std::string& address) {
  if (mesh_->membership().members().count(address)) return;
  mesh_->join({address}, node_->clock->now());
  react();
}

void NodeState::on_leave() {
  mesh_->leave(node_->clock->now());
  flush();
}

void NodeState::flush() {
  for (auto& out : mesh_->take_outgoing()) {
    routes_.to_node(send_now(self_), *node_, out.to, wire::Message{0, ++seq_, std::move(out.body)});
  }
}

void NodeState::react() {
  report_changes();
  report_leadership_and_plan();
  const auto want = mesh_->assignment();
  if (want != asked_) {
    asked_ = want;
    self_->send(routes_.stage, load_atom::value, want ? want->begin : 0, want ? want->end : 0);
  }
  update_route();
  if (!route_.empty()) hand_out_route();
  flush();
  node_->sim_hook->observe(*mesh_);
}

// Logs the members that changed and tells whom they concern: the stage forgets the sessions
// that depend on a member gone, and entries re-route theirs (the rules: discovery/session.hpp).
void NodeState::report_changes() {
  const discovery::Mesh& m = *mesh_;
  for (const auto& w : mesh_->take_warnings()) spdlog::warn("{}", w);
  for (const auto& c : mesh_->take_changes()) {
    const std::string who = m.name_of(c.address) + " (" + c.address + ")";
    if (!c.before) {
      spdlog::info("member {} joined", who);
    } else if (c.replaced) {
      spdlog::info("member {} restarted: another instance holds its address", who);
    } else if (*c.before != c.after) {
      spdlog::info("member {} is {}", who, wire::state_name(c.after));
    }
    if (!discovery::member_gone(c)) continue;
    self_->send(routes_.stage, peer_lost_atom::value, c.address);
    for (auto& [id, s] : sessions_) {
      if (std::find(s.stages.begin(), s.stages.end(), c.address) != s.stages.end()) {
        self_->send(s.actor, peer_lost_atom::value, c.address, m.name_of(c.address));
      }
    }
  }
}

void NodeState::report_leadership_and_plan() {
  const discovery::Mesh& m = *mesh_;
  if (!(m.leadership() == leadership_)) {
    leadership_ = m.leadership();
    spdlog::info("term {}: coordinator {}{}", leadership_.term, m.name_of(leadership_.coordinator),
                 m.is_coordinator() ? " (this node)" : "");
  }
  if (m.plan().version != plan_version_) {
    plan_version_ = m.plan().version;
    std::string s;
    for (const auto& st : m.plan().stages) s += (s.empty() ? "" : ", ") + st.node + " " + format_range(st.layers);
    spdlog::info("plan v{}: {}{}", m.plan().version, s.empty() ? "no stages" : s,
                 m.plan().problem.empty() ? "" : "; " + m.plan().problem);
  }
}

// The live route, compared in place (the mesh keeps it between changes; this runs after every
// event).
void NodeState::update_route() {
  if (mesh_->route_changes() == route_changes_seen_) return;
  route_changes_seen_ = mesh_->route_changes();
  const auto& live = mesh_->route();
  const bool moved = live.size() != route_.size() ||
                     !std::equal(live.begin(), live.end(), route_.begin(), [](const auto& a, const auto& b) {
                       return a.address == b.address && a.layers == b.layers;
                     });
  if (!moved) return;
  route_.clear();
  for (const auto& st : live) route_.push_back({st.address, st.layers});
  if (route_.empty()) {
    spdlog::info("not serving: {}", mesh_->route_problem());
  } else {
    spdlog::info("serving through {}", describe(route_, *mesh_));
  }
}

void NodeState::hand_out_route() {
  for (auto& [id, s] : sessions_) {
    if (!s.waiting) continue;
    s.waiting = false;
    s.stages.clear();
    for (const auto& st : route_) s.stages.push_back(st.address);
    self_->send(s.actor, route_atom::value, route_, std::string(), new_wire_id(id));
  }
}

// --- clients and sessions --------------------------------------------------------------------------

void NodeState::reply(const std::string& route, wire::Body body) {
  self_->send(routes_.transport, reply_atom::value, route, wire::Message{0, 0, std::move(body)});
}

// Frames of the types a node takes from peers or clients (the transport actor dropped those
// from the wrong kind of sender). The mesh protocol checks what it is told; an exception that
// still escapes it drops the frame, where escaping it would end this actor and every session
// linked to it.
void NodeState::on_wire(const Origin& from, const wire::Message& message) {
  using T = wire::MessageType;
  try {
    switch (message.type()) {
      case T::gossip:
        mesh_->receive(std::get<wire::Gossip>(message.body), node_->clock->now());
        react();
        return;
      case T::plan:
        mesh_->receive(std::get<wire::PlanAnnounce>(message.body), node_->clock->now());
        react();
        return;
      case T::generate:
        on_generate(from.id, std::get<wire::GenerateRequest>(message.body));
        return;
      case T::status_request:
        reply(from.id, status());
        return;
      case T::sampled:
      case T::error:
        on_session_frame(from, message);
        return;
      default:
        drop_frame(*node_, from, std::string("the node does not take ") + wire::type_name(message.type()));
        return;
    }
  } catch (const std::exception& e) {
    drop_frame(*node_, from, std::string(wire::type_name(message.type())) + ": " + e.what());
  }
}

// No live route while the mesh re-plans (stages loading): the session waits for one, as a
// re-routed session does. When no plan could cover the model, there is nothing to wait for.
void NodeState::on_generate(const std::string& route, const wire::GenerateRequest& request) {
  switch (discovery::admit(*mesh_, sessions_.size())) {
    case discovery::Admission::cannot_cover:
      reply(route, wire::Error{1, "the mesh at " + node_->name + " cannot serve yet: " + mesh_->route_problem()});
      return;
    case discovery::Admission::busy:
      reply(route, wire::Error{1, node_->name + " is busy: " + std::to_string(wire::kMaxSessions) +
                                      " sessions in flight"});
      return;
    case discovery::Admission::serve:
    case discovery::Admission::wait:  // the session waits for a route (an empty one)
      break;
  }
  const uint64_t id = new_session_id();
  EnteredSession& entry = sessions_[id];
  for (const auto& st : route_) entry.stages.push_back(st.address);
  entry.client_route = route;
  entry.actor = self_->spawn<caf::linked>(session_actor, node_, routes_, id, new_wire_id(id), route, request, route_);
  node_->metrics->sessions_total.fetch_add(1, std::memory_order_relaxed);
}

// A new session's id, or wire id: 64 random bits from NodeContext::random (unguessable on a
// device), never 0 (no session) nor an id in use here. Ids from different entries, or from an
// entry's earlier life (which stages remember as ended), meet with a chance of one in 2^64 per
// pair.
uint64_t NodeState::new_session_id() const {
  while (true) {
    const uint64_t id = node_->random->next();
    if (id != 0 && !sessions_.count(id) && !by_wire_id_.count(id)) return id;
  }
}

// The id the stages of the next route of `session` are to know it by.
uint64_t NodeState::new_wire_id(uint64_t session) {
  const uint64_t id = new_session_id();
  by_wire_id_[id] = session;
  sessions_.at(session).wire_ids.push_back(id);
  return id;
}

// A sampled token or an error for a session that entered here: to its session actor, which
// checks that it came from a stage of the session's route.
void NodeState::on_session_frame(const Origin& from, const wire::Message& message) {
  const auto owner = by_wire_id_.find(message.session);
  if (owner == by_wire_id_.end()) {
    const auto late = [&](const Ended& e) {
      return from.is_peer(e.last_stage) && std::count(e.wire_ids.begin(), e.wire_ids.end(), message.session);
    };
    if (std::any_of(ended_.begin(), ended_.end(), late)) return;  // the late copy of its last stage's frame
    drop_frame(*node_, from, fmt::format("{} for session {:x}, which did not enter here (or is over)",
                                         wire::type_name(message.type()), message.session));
    return;
  }
  self_->send(sessions_.at(owner->second).actor, wire_atom::value, from, message);
}

void NodeState::on_reroute(uint64_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  it->second.waiting = true;
  // Nothing may come to wait for (a static mesh whose pinned stage is gone): then the session
  // fails after kCoverGrace, unless the stage comes back at its address before.
  it->second.cover_deadline.reset();
  if (discovery::admit(*mesh_, 0) == discovery::Admission::cannot_cover) {
    it->second.cover_deadline = node_->clock->now() + discovery::kCoverGrace;
  }
  react();  // hands over the live route at once when there is one
}

// Sessions waiting past their kCoverGrace for layers no live member can cover: told there is no
// route, and why.
void NodeState::give_up_uncovered() {
  const auto now = node_->clock->now();
  for (auto& [id, s] : sessions_) {
    if (!s.waiting || !s.cover_deadline || now < *s.cover_deadline) continue;
    s.cover_deadline.reset();
    if (discovery::admit(*mesh_, 0) != discovery::Admission::cannot_cover) continue;
    s.waiting = false;
    self_->send(s.actor, route_atom::value, std::vector<wire::RouteStage>{}, mesh_->route_problem(), uint64_t(0));
  }
}

void NodeState::on_ended(uint64_t id) {
  const auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  EnteredSession& s = it->second;
  for (const uint64_t w : s.wire_ids) by_wire_id_.erase(w);
  ended_.push_back({std::move(s.wire_ids), s.stages.empty() ? std::string() : s.stages.back()});
  if (ended_.size() > kEndedKept) ended_.pop_front();
  sessions_.erase(it);
}

void NodeState::on_route_gone(const std::string& route) {
  for (const auto& [id, s] : sessions_) {
    if (s.client_route == route) self_->send(s.actor, route_gone_atom::value);
  }
}

wire::Status NodeState::status() const {
  const discovery::Mesh& m = *mesh_;
  wire::Status s;
  s.self = node_->name;
  s.term = m.leadership().term;
  if (!m.leadership().coordinator.empty()) s.coordinator = m.name_of(m.leadership().coordinator);
  for (const auto& v : m.members()) {
    if (s.members.size() >= wire::kMaxPeers) break;
    wire::Member& x = s.members.emplace_back();
    x.name = v.info.name;
    x.address = v.info.address;
    x.state = wire::state_name(v.state);
    x.layers = v.info.layers;
    x.mem_budget = v.info.mem_budget;
    x.base_rss = v.info.base_rss;
    x.throughput = v.info.throughput;
    x.cores = v.info.cores;
    x.arch = v.info.arch;
    x.since_seconds = std::chrono::duration<double>(node_->clock->now() - v.since).count();
  }
  s.plan_version = m.plan().version;
  s.stages = m.plan().stages;
  s.model_layers = node_->config->n_layers;
  s.serving = !route_.empty();
  s.problem = s.serving ? std::string() : m.route_problem();
  const NodeMetrics& x = *node_->metrics;
  wire::NodeCounters& c = s.counters;
  c.sessions_active = sessions_.size();
  c.sessions_total = x.sessions_total.load();
  c.tokens_generated = x.tokens_generated.load();
  c.stage_positions = x.stage_positions.load();
  c.stage_compute_seconds = double(x.stage_compute_ns.load()) / 1e9;
  c.sessions_resumed = x.sessions_resumed.load();
  c.positions_kept = x.positions_kept.load();
  c.stage_passes = x.stage_passes.load();
  c.stage_pass_sessions = x.stage_pass_sessions.load();
  const auto traffic = node_->traffic();
  c.frames_sent = traffic[0];
  c.bytes_sent = traffic[1];
  c.frames_received = traffic[2];
  c.bytes_received = traffic[3];
  if (node_->memory) {
    const auto memory = node_->memory();
    c.rss_bytes = memory[0];
    c.peak_rss_bytes = memory[1];
  }
  c.hops = x.hops.load();
  c.hop_seconds = double(x.hop_ns.load()) / 1e9;
  c.frames_dropped = x.dropped_frames.total();
  return s;
}

}  // namespace troupe::actors
