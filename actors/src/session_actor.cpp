#include "session_actor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "troupe/model/error.hpp"
#include "troupe/text/completion.hpp"

namespace troupe::actors {

namespace {

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The route's hops that leave the entry node and come back to it.
uint64_t hops_of(const std::vector<wire::RouteStage>& route, const std::string& entry) {
  uint64_t hops = 0;
  std::string at = entry;
  for (const auto& st : route) {
    hops += st.address != at;
    at = st.address;
  }
  return hops + (at != entry);
}

}  // namespace

SessionActor::behavior_type session_actor(SessionActor::stateful_pointer<SessionState> self, const NodeContext* node,
                                          Routes routes, uint64_t id, uint64_t wire_id, std::string client_route,
                                          wire::GenerateRequest request, std::vector<wire::RouteStage> first_route) {
  return self->state.behavior(node, std::move(routes), id, wire_id, std::move(client_route), std::move(request),
                              std::move(first_route));
}

SessionActor::behavior_type SessionState::behavior(const NodeContext* node, Routes routes, uint64_t id,
                                                   uint64_t wire_id, std::string client_route,
                                                   wire::GenerateRequest request,
                                                   std::vector<wire::RouteStage> first_route) {
  node_ = node;
  routes_ = std::move(routes);
  id_ = id;
  wire_ids_[0] = wire_id;
  client_route_ = std::move(client_route);
  request_ = std::move(request);
  first_route_ = std::move(first_route);
  t0_ = node_->clock->now();
  self_->send(caf::actor_cast<SessionActor>(self_), init_atom::value);
  return {
      [this](init_atom) { on_init(); },
      [this](wire_atom, const Origin& from, const wire::Message& message) { on_wire(from, message); },
      [this](peer_lost_atom, const std::string& address, const std::string& name) { on_peer_lost(address, name); },
      [this](reroute_atom, int attempt) { on_reroute_timeout(attempt); },
      [this](route_atom, std::vector<wire::RouteStage>& route, const std::string& problem, uint64_t wire_id) {
        on_route(std::move(route), problem, wire_id);
      },
      [this](route_gone_atom) { on_route_gone(); },
      // Silence is counted in kProbeAfter periods (discovery::EntrySession::quiet): the stages
      // are asked whether they still hold the session, and it fails after kSessionStallTimeout.
      caf::after(discovery::kProbeAfter) >> [this] { on_quiet(); },
  };
}

// --- the handlers ----------------------------------------------------------------------------------

void SessionState::on_init() {
  const int seq_len = node_->config->seq_len;
  try {
    PreparedCompletion p = prepare_completion(request_, *node_->tokenizer, seq_len);
    generation_.emplace(*node_->tokenizer, std::move(p.prompt), p.steps, seq_len, std::move(p.options));
  } catch (const InputError& e) {
    spdlog::warn("session {:x} failed: {}", id_, e.what());
    to_client(wire::Error{2, e.what()});
    close();
    return;
  }
  Generation& g = *generation_;
  prompt_tokens_ = static_cast<int>(g.prompt_tokens().size());
  if (!g.prompt_text().empty()) to_client(wire::Text{g.prompt_text()});
  if (g.done()) {
    finish_reply();
    close();
    return;
  }
  protocol_.emplace(std::vector<int>(g.input().begin(), g.input().end()), request_.sampling.seed);
  act(protocol_->begin(first_route_));
}

void SessionState::on_wire(const Origin& from, const wire::Message& message) {
  if (!protocol_) return;
  const auto attempt = std::find_if(wire_ids_.begin(), wire_ids_.end(),
                                    [&](const auto& a) { return a.second == message.session; });
  if (attempt == wire_ids_.end() || !protocol_->expects(attempt->first)) return;  // an earlier route's
  const auto& route = protocol_->route();
  const bool from_last = !route.empty() && from.is_peer(route.back().address);
  const auto stage = std::find_if(route.begin(), route.end(), [&](const auto& st) { return from.is_peer(st.address); });
  if (auto* m = std::get_if<wire::Sampled>(&message.body); m && from_last) {
    on_sampled(from, *m);
  } else if (auto* m = std::get_if<wire::Error>(&message.body); m && stage != route.end()) {
    act(protocol_->error(m->code, m->message, stage->address));
  } else {
    drop_frame(*node_, from, fmt::format("{} for session {:x}, which {} does not send", wire::type_name(message.type()),
                                         id_, from.describe()));
  }
}

void SessionState::on_sampled(const Origin& from, const wire::Sampled& m) {
  Protocol& protocol = *protocol_;
  if (protocol.seen(m.pos)) return;  // its copy on the other lane came first
  if (auto failed = protocol.sampled(m.pos, m.rng_state); !failed.empty()) {
    act(std::move(failed));
    return;
  }
  Generation& g = *generation_;
  std::string text;
  try {
    text = g.accept(m.token);
  } catch (const InputError& e) {
    // A stage that samples outside the vocabulary is broken or hostile: this session cannot go on
    // with it (and the node must not go down with it).
    act(protocol.error(1, "the last stage " + from.describe() + " sent a token the entry cannot take: " + e.what(),
                       protocol.route().back().address));
    return;
  }
  if (g.generated_tokens() == 1) first_token_ = node_->clock->now();
  node_->metrics->tokens_generated.fetch_add(1, std::memory_order_relaxed);
  count_hops(m);
  if (!text.empty()) to_client(wire::Text{text});
  if (g.done()) {
    finish_reply();
    act(protocol.finish());
    close();
    return;
  }
  act(protocol.next(g.input()[0]));
}

// A decode step's round trip: the route's hops (those that leave this node) and compute.
void SessionState::count_hops(const wire::Sampled& m) {
  if (step_sent_ == Clock::time_point{}) return;  // no step in flight: a replay answered
  const uint64_t hops = hops_of(protocol_->route(), node_->address);
  const auto rtt = std::chrono::duration_cast<std::chrono::nanoseconds>(node_->clock->now() - step_sent_).count();
  const int64_t network = rtt - int64_t(m.compute_us) * 1000;
  if (hops > 0 && network > 0) {
    node_->metrics->hops.fetch_add(hops, std::memory_order_relaxed);
    node_->metrics->hop_ns.fetch_add(uint64_t(network), std::memory_order_relaxed);
  }
  step_sent_ = {};
}

void SessionState::on_peer_lost(const std::string& address, const std::string& name) {
  if (protocol_) act(protocol_->peer_lost(address, name));
}

void SessionState::on_reroute_timeout(int attempt) {
  if (protocol_) act(protocol_->reroute_timeout(attempt));
}

void SessionState::on_route(std::vector<wire::RouteStage> route, const std::string& problem, uint64_t wire_id) {
  if (!protocol_) return;
  if (!route.empty()) wire_ids_[protocol_->attempt()] = wire_id;
  act(protocol_->route_found(std::move(route), problem));
}

void SessionState::on_route_gone() {
  spdlog::info("session {:x}: its client went away", id_);
  if (protocol_) act(protocol_->abandon("the client went away"));
  close();
}

void SessionState::on_quiet() {
  if (protocol_) act(protocol_->quiet());
}

// --- what the protocol decided -----------------------------------------------------------------------

void SessionState::act(Protocol::Actions actions) {
  for (auto& action : actions) {
    if (auto* a = std::get_if<Protocol::Start>(&action)) {
      start_on(*a);
    } else if (auto* a = std::get_if<Protocol::Step>(&action)) {
      step_sent_ = node_->clock->now();
      send_to_stage(a->to, a->attempt, wire::Step{a->pos, a->token});
    } else if (auto* a = std::get_if<Protocol::Probe>(&action)) {
      send_to_stage(a->to, a->attempt, wire::SessionProbe{a->pos});
    } else if (auto* a = std::get_if<Protocol::End>(&action)) {
      send_to_stage(a->to, a->attempt, wire::SessionEnd{a->reason});
    } else if (auto* a = std::get_if<Protocol::AskRoute>(&action)) {
      ask_route(*a);
    } else if (auto* a = std::get_if<Protocol::Fail>(&action)) {
      spdlog::warn("session {:x} failed: {}", id_, a->message);
      to_client(wire::Error{a->code, a->message});
      close();
    }
  }
}

void SessionState::start_on(Protocol::Start& a) {
  wire::SessionStart start;
  start.entry = node_->address;
  start.route = std::move(a.route);
  start.sampling = request_.sampling;
  start.sampling.seed = a.rng_state;
  start.steps = generation_->steps();
  start.tokens = std::move(a.tokens);
  if (const auto left = wire_ids_.find(a.resume_attempt); left != wire_ids_.end()) {
    start.resume = left->second;
    start.resume_pos = a.resume_pos;
    start.kept = std::move(a.kept);
    start.fill = std::move(a.fill);
  }
  step_sent_ = {};  // a replay's round trip is not a hop's
  send_to_stage(a.to, a.attempt, std::move(start));
}

void SessionState::ask_route(const Protocol::AskRoute& a) {
  spdlog::info("session {:x}: {}; re-routing", id_, protocol_->reroute_reason());
  self_->delayed_send(routes_.node, a.after_move ? discovery::kMovedWait : discovery::Millis(0), reroute_atom::value, id_);
  self_->delayed_send(caf::actor_cast<SessionActor>(self_), discovery::kRerouteTimeout, reroute_atom::value, a.attempt);
}

void SessionState::send_to_stage(const std::string& address, int attempt, wire::Body body) {
  const auto wire_id = wire_ids_.find(attempt);
  if (wire_id == wire_ids_.end()) return;  // no route was taken on that attempt: nothing to tell
  routes_.to_node(send_now(self_), *node_, address, wire::Message{wire_id->second, ++seq_, std::move(body)});
}

void SessionState::to_client(wire::Body body) {
  self_->send(routes_.transport, reply_atom::value, client_route_, wire::Message{id_, ++seq_, std::move(body)});
}

void SessionState::close() {
  self_->send(routes_.node, ended_atom::value, id_);
  self_->quit();
}

void SessionState::finish_reply() {
  const Generation& g = *generation_;
  const auto now = node_->clock->now();
  wire::Done done;
  done.stats.prompt_tokens = prompt_tokens_;
  done.stats.generated_tokens = g.generated_tokens();
  done.stats.positions = g.positions();
  if (g.generated_tokens() > 0) {
    done.stats.first_token_ms = ms_between(t0_, first_token_);
    done.stats.decode_ms = ms_between(first_token_, now);
  }
  done.stats.total_ms = ms_between(t0_, now);
  done.finish_reason = finish_reason_name(g.finish_reason());
  to_client(done);
}

}  // namespace troupe::actors
