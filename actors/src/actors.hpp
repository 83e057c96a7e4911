// The actors of a node (see node.hpp for how they are wired):
// - TransportActor: the bridge between CAF and the Transport (ZeroMQ ROUTER/DEALER sockets),
//   running on the transport's thread: decodes incoming frames and hands them to the actor they
//   are for; encodes outgoing ones.
// - NodeActor: hosts the mesh protocol (discovery::Mesh: membership, election, plan), tells the
//   stage which layers to hold, answers clients, and keeps the registry of sessions that entered
//   here, re-routing them when a stage they use is lost or moves.
// - StageActor: the forward pass over the layer range the node holds (loading and releasing
//   ranges as the plan says), one Transformer (KV cache) per session; detached (its own
//   thread), because a prompt batch or a load may take long.
// - SessionActor: one conversation entered through this node: run.c's generation loop
//   (Generation) driven by tokens sampled by the last stage; streams text to its client, and
//   keeps the tokens so far, so that a new route can rebuild the KV caches by replaying them.
#pragma once

#include <caf/all.hpp>
#include <memory>
#include <string>
#include <vector>

#include "troupe/actors/node_context.hpp"
#include "troupe/discovery/session.hpp"
#include "troupe/protocol/transport.hpp"
#include "troupe/protocol/wire.hpp"

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

// The stage learns where its messages go from (init_atom, transport actor, node actor).
caf::behavior stage_actor(caf::event_based_actor* self, const NodeContext* node);
caf::behavior node_actor(caf::event_based_actor* self, const NodeContext* node,
                         caf::actor transport, caf::actor stage);
caf::behavior session_actor(caf::event_based_actor* self, const NodeContext* node, Routes routes,
                            uint64_t session, std::string client_route,
                            wire::GenerateRequest request, std::vector<wire::RouteStage> route);

// How often the node actor runs the mesh protocol's timers.
inline constexpr auto kMeshTick = std::chrono::milliseconds(25);
// Session ids: the entry's hash in the high half, a counter in the low 20 bits, and the
// attempt (one per route the session has taken) in the 12 bits between: frames of an earlier
// attempt are recognised and ignored.
inline constexpr uint64_t kAttemptShift = 20;
inline constexpr uint64_t kAttemptMask = uint64_t(0xFFF) << kAttemptShift;

}  // namespace troupe::actors
