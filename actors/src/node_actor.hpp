// The node actor: hosts this node's part of the mesh protocol (discovery::Mesh) on the node's
// clock and transport, and acts on what it decides: the stage loads the layers the plan gives
// this node, sessions that entered here take the live route, and a session whose stage is lost
// or moves gets a new route. It answers the clients' requests (generate, status).
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors.hpp"
#include "troupe/discovery/mesh.hpp"

namespace troupe::actors {

// The node actor's state (caf::stateful_actor: destroyed when the actor exits, with the handles
// it holds, so that actors holding each other's handles never keep each other alive) and its
// handlers.
class NodeState {
 public:
  explicit NodeState(NodeActor::stateful_pointer<NodeState> self) : self_(self) {}
  NodeActor::behavior_type behavior(const NodeContext* node, TransportActor transport, StageActor stage);

 private:
  struct EnteredSession {
    SessionActor actor;
    std::string client_route;
    std::vector<std::string> stages;  // the addresses of its current route
    std::vector<uint64_t> wire_ids;   // the ids its routes' stages know it by, one per route
    bool waiting = false;             // for a route
    // While no live member can cover the session's layers: when it stops waiting for one.
    std::optional<discovery::TimePoint> cover_deadline;
  };

  // The handlers.
  void on_init();
  void on_tick();
  void give_up_uncovered();
  void on_wire(const Origin& from, const wire::Message& message);
  void on_generate(const std::string& route, const wire::GenerateRequest& request);
  void on_session_frame(const Origin& from, const wire::Message& message);
  uint64_t new_session_id() const;
  uint64_t new_wire_id(uint64_t session);
  void on_loaded(int begin, int end);
  void on_reroute(uint64_t id);
  void on_ended(uint64_t id);
  void on_peer_lost(const std::string& address);
  void on_route_gone(const std::string& route);
  void on_discovered(const std::string& address);
  void on_leave();

  // After every event: log what changed, move the stage to its assignment, hand the live route
  // to the sessions that wait for one, send what the mesh has to send, and let the hook look.
  void react();
  void report_changes();
  void report_leadership_and_plan();
  void update_route();
  void hand_out_route();
  void flush();
  void reply(const std::string& route, wire::Body body);
  wire::Status status() const;

  NodeActor::stateful_pointer<NodeState> self_;
  const NodeContext* node_ = nullptr;
  Routes routes_;
  std::unique_ptr<discovery::Mesh> mesh_;
  // Session ids are 64 random bits from NodeContext::random (unguessable on a device: nobody else
  // can address frames to a session), and so are the wire ids its stages know it by: a new one
  // for each route it takes, so that frames of an earlier route are told apart.
  std::map<uint64_t, EnteredSession> sessions_;  // by session id (the client's)
  std::map<uint64_t, uint64_t> by_wire_id_;      // wire id -> session id
  // The latest sessions over, with their last stage: a decode step's frames travel on both
  // lanes, and the copy of a session's last `sampled` may come after the session is over.
  struct Ended {
    std::vector<uint64_t> wire_ids;
    std::string last_stage;
  };
  std::deque<Ended> ended_;
  static constexpr std::size_t kEndedKept = 256;
  uint64_t seq_ = 0;
  std::optional<LayerRange> asked_;  // the range last asked of the stage
  std::vector<wire::RouteStage> route_;
  uint64_t route_changes_seen_ = 0;  // mesh_->route_changes() when route_ was last compared
  uint64_t plan_version_ = 0;
  discovery::Leadership leadership_;
};

// Spawned by NodeActors (system.spawn(node_actor, ...)).
NodeActor::behavior_type node_actor(NodeActor::stateful_pointer<NodeState> self, const NodeContext* node,
                                    TransportActor transport, StageActor stage);

}  // namespace troupe::actors
