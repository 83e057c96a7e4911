// The session actor: one completion that entered through this node. It hosts the session's
// protocol (discovery::EntrySession: the route, the tokens fed so far, re-routing and replay) and
// runs run.c's generation loop (Generation) with the mesh as its forward pass: the prompt goes to
// the first stage, each token sampled by the last stage comes back here, is streamed to the
// client, and goes on to the first stage for the next position.
//
// It takes `sampled` only from the last stage of its route and `error` only from a stage of it
// (the node actor hands it every frame with the session's id); frames from anyone else are
// dropped and counted. A token outside the vocabulary fails the session with a line naming the
// stage that sent it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "actors.hpp"
#include "troupe/discovery/session.hpp"
#include "troupe/text/generate.hpp"

namespace troupe::actors {

// The session actor's state (caf::stateful_actor: destroyed when the actor exits, with the
// handles it holds) and its handlers.
class SessionState {
 public:
  explicit SessionState(SessionActor::stateful_pointer<SessionState> self) : self_(self) {}
  SessionActor::behavior_type behavior(const NodeContext* node, Routes routes, uint64_t id, uint64_t wire_id,
                                       std::string client_route, wire::GenerateRequest request,
                                       std::vector<wire::RouteStage> first_route);

 private:
  using Protocol = discovery::EntrySession;

  // The handlers.
  void on_init();
  void on_wire(const Origin& from, const wire::Message& message);
  void on_sampled(const Origin& from, const wire::Sampled& m);
  void on_peer_lost(const std::string& address, const std::string& name);
  void on_reroute_timeout(int attempt);
  void on_route(std::vector<wire::RouteStage> route, const std::string& problem, uint64_t wire_id);
  void on_route_gone();
  void on_quiet();

  // Carries out what the protocol decided.
  void act(Protocol::Actions actions);
  void start_on(Protocol::Start& a);
  void ask_route(const Protocol::AskRoute& a);
  void send_to_stage(const std::string& address, int attempt, wire::Body body);
  void count_hops(const wire::Sampled& m);
  void to_client(wire::Body body);
  void finish_reply();
  void close();

  SessionActor::stateful_pointer<SessionState> self_;
  const NodeContext* node_ = nullptr;
  Routes routes_;
  uint64_t id_ = 0;                       // the session's (the client knows it by this)
  std::map<int, uint64_t> wire_ids_;      // by attempt: the id its route's stages know it by
  std::string client_route_;
  wire::GenerateRequest request_;
  std::vector<wire::RouteStage> first_route_;
  std::optional<Generation> generation_;
  std::optional<Protocol> protocol_;
  uint64_t seq_ = 0;
  Clock::time_point t0_, first_token_;
  Clock::time_point step_sent_;  // of the step in flight: its round trip, less compute, is network
  int prompt_tokens_ = 0;
};

// Spawned by the node actor, linked to it, for a client's completion request.
SessionActor::behavior_type session_actor(SessionActor::stateful_pointer<SessionState> self, const NodeContext* node,
                                          Routes routes, uint64_t id, uint64_t wire_id, std::string client_route,
                                          wire::GenerateRequest request, std::vector<wire::RouteStage> first_route);

}  // namespace troupe::actors
