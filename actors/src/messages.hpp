// What the actors of one node say to each other. Frames between nodes are the wire protocol's
// (msgpack); these messages never leave the process, so wire::Message travels between actors as
// a plain C++ value (CAF would need an inspect overload only to serialize it).
#pragma once

#include <caf/all.hpp>
#include <string>

#include "troupe/protocol/transport.hpp"
#include "troupe/protocol/wire.hpp"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::wire::Message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<troupe::wire::RouteStage>)

namespace troupe::actors {

// transport thread -> TransportActor: (frame_atom, route, Frame) bytes arrived.
using frame_atom = caf::atom_constant<caf::atom("frame")>;
// -> TransportActor: (send_atom, address, Message) to a peer, (reply_atom, route, Message) to a
// client.
using send_atom = caf::atom_constant<caf::atom("send")>;
using reply_atom = caf::atom_constant<caf::atom("reply")>;
// TransportActor -> node, stage, session actors: (wire_atom, route, Message) a decoded frame
// ("" as route for a message from this node itself).
using wire_atom = caf::atom_constant<caf::atom("wire")>;
// Connection events: (peer_lost_atom, address[, name]), (peer_up_atom, address),
// (route_gone_atom, route).
using peer_lost_atom = caf::atom_constant<caf::atom("peerlost")>;
using peer_up_atom = caf::atom_constant<caf::atom("peerup")>;
using route_gone_atom = caf::atom_constant<caf::atom("routegone")>;
// Start-up wiring, timers, and a session telling the node it is over: (ended_atom, session id).
using init_atom = caf::atom_constant<caf::atom("init")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using ended_atom = caf::atom_constant<caf::atom("ended")>;
// Node -> stage: (load_atom, begin, end) hold layers [begin, end) (0, 0: none). Stage -> node:
// (loaded_atom, begin, end) what it holds now.
using load_atom = caf::atom_constant<caf::atom("load")>;
using loaded_atom = caf::atom_constant<caf::atom("loaded")>;
// Stage -> itself: (prefill_atom, session id) run the next batch of that session's prompt.
using prefill_atom = caf::atom_constant<caf::atom("prefill")>;
// Session -> node: (reroute_atom, base id) it needs a route; node -> session: (route_atom,
// stages) one to take. Node::stop -> node: (leave_atom) tell the mesh.
using reroute_atom = caf::atom_constant<caf::atom("reroute")>;
using route_atom = caf::atom_constant<caf::atom("route")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
// LAN beacon -> node: (discovered_atom, address) a node of this model there.
using discovered_atom = caf::atom_constant<caf::atom("found")>;

}  // namespace troupe::actors
