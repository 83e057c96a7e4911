// The actors of a node (see node.hpp for how they are wired):
// - TransportActor: the bridge between CAF and the Transport (ZeroMQ ROUTER/DEALER sockets),
//   running on the transport's thread: decodes incoming frames and hands them to the actor they
//   are for; encodes outgoing ones.
// - NodeActor: membership (hello/heartbeat), the static stage plan, client requests, and the
//   registry of sessions that entered here.
// - StageActor: the forward pass over the node's layer range, one Transformer (KV cache) per
//   session; detached (its own thread), because a prompt batch may take long.
// - SessionActor: one conversation entered through this node: run.c's generation loop
//   (Generation) driven by tokens sampled by the last stage; streams text to its client.
#pragma once

#include <caf/all.hpp>
#include <memory>
#include <string>
#include <vector>

#include "node_context.hpp"
#include "troupe/runtime/transport.hpp"
#include "troupe/runtime/wire.hpp"

namespace troupe::actors {

class TransportActor {
 public:
  // Spawns the actor; messages to handle() wait until start().
  TransportActor(caf::actor_system& system, const NodeContext* node, Transport* transport);
  ~TransportActor();  // stop()s
  caf::actor handle() const;
  // Starts the transport, delivering stage traffic to `stage` (when the node has one) and
  // everything else to `node`.
  void start(caf::actor node, caf::actor stage);
  // Stops the transport and ends the actor.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Where a node's messages go: to another node through the transport actor, or, for this node's
// own address, straight to the local actor that handles them (no detour through the transport).
struct Routes {
  caf::actor transport;
  caf::actor node;   // everything but stage traffic
  caf::actor stage;  // session_start, step, activations, session_end (none: the node's)
  caf::actor local_handler(wire::MessageType type) const;
};
// Sends `message` to the node at `address` (this node's own included).
void send_to(caf::event_based_actor* self, const NodeContext* node, const Routes& routes,
             const std::string& address, wire::Message message);

// The stage learns the node actor's handle from (init_atom, node actor).
caf::behavior stage_actor(caf::event_based_actor* self, const NodeContext* node,
                          caf::actor transport);
caf::behavior node_actor(caf::event_based_actor* self, const NodeContext* node,
                         caf::actor transport, caf::actor stage, std::vector<std::string> joins);
caf::behavior session_actor(caf::event_based_actor* self, const NodeContext* node, Routes routes,
                            uint64_t session, std::string client_route,
                            wire::GenerateRequest request, std::vector<wire::RouteStage> route);

// How long a session waits for the next token before it gives up on the mesh.
inline constexpr auto kSessionStallTimeout = std::chrono::seconds(120);
// Heartbeat period, and the silence after which a peer counts as dead.
inline constexpr auto kHeartbeat = std::chrono::seconds(1);
inline constexpr auto kPeerSilence = std::chrono::seconds(6);

}  // namespace troupe::actors
