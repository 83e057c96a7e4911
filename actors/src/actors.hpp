// The actors of a node (their messages: troupe/actors/interfaces.hpp; how NodeActors wires
// them: node_actors.cpp). The node, stage and session actors are typed, stateful actors
// (caf::stateful_actor) whose handlers are member functions of their state; the transport actor
// is an actor_companion behind a typed handle:
// - TransportActor (transport_actor.hpp): the bridge between CAF and the Transport (ZeroMQ
//   ROUTER/DEALER sockets), running on the transport's thread: decodes incoming frames and hands
//   them to the actor they are for; encodes outgoing ones.
// - NodeActor (node_actor.hpp): hosts the mesh protocol (discovery::Mesh: membership, election,
//   plan), tells the stage which layers to hold, answers clients, and keeps the registry of
//   sessions that entered here, re-routing them when a stage they use is lost or moves.
// - StageActor (stage_actor.hpp): the forward pass over the layer range the node holds (loading
//   and releasing ranges as the plan says), one StageModel::Session (KV cache) per session;
//   detached (its own thread), because a prompt batch or a load may take long.
// - SessionActor (session_actor.hpp): one conversation entered through this node: run.c's
//   generation loop (Generation) driven by tokens sampled by the last stage; streams text to its
//   client, and keeps the tokens so far, so that a new route can rebuild the KV caches by
//   replaying them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "troupe/actors/interfaces.hpp"
#include "troupe/actors/node_context.hpp"

namespace troupe::actors {

// Where a node's messages go: to another node through the transport actor, or, for this node's
// own address, straight to the local actor that handles them (no detour through the transport).
struct Routes {
  TransportActor transport;
  NodeActor node;    // everything but stage traffic
  StageActor stage;  // session_start, step, activations, session_end (none: the node's)

  static bool for_stage(wire::MessageType type);
  // Hands `message` from `origin` to the local actor that handles it: `post(handle, xs...)`
  // sends xs to that handle.
  template <class Post>
  void to_local(Post&& post, Origin origin, wire::Message message) const {
    if (stage && for_stage(message.type())) {
      post(stage, wire_atom::value, std::move(origin), std::move(message));
    } else {
      post(node, wire_atom::value, std::move(origin), std::move(message));
    }
  }
  // Hands `message` for the node at `address` to the actor that takes it: the transport actor,
  // or the local handler when the address is this node's (`node`), as a frame from itself.
  template <class Post>
  void to_node(Post&& post, const NodeContext& node, const std::string& address, wire::Message message) const {
    if (address == node.address) {
      to_local(post, Origin::peer(node.address), std::move(message));
    } else {
      post(transport, send_atom::value, address, std::move(message));
    }
  }
};

// Sends what an actor sends at once: `self->send`.
template <class Self>
auto send_now(Self* self) {
  return [self](const auto& to, auto&&... xs) { self->send(to, std::forward<decltype(xs)>(xs)...); };
}

// A frame from `from` dropped for `why`: counted in the node's metrics (troupe_frames_dropped_total)
// and logged at most once a second per sender, with a count (DropLog). Any actor's thread.
void drop_frame(const NodeContext& node, const Origin& from, const std::string& why);

// How often the node actor runs the mesh protocol's timers.
inline constexpr auto kMeshTick = std::chrono::milliseconds(25);

}  // namespace troupe::actors
