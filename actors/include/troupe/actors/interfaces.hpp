// What the actors of one node say to each other: every message each of them takes, in the typed
// interface of each (actors/src/actors.hpp says what each actor does). Frames between nodes are
// the wire protocol's (msgpack); these messages never leave the process, so wire::Message
// travels between actors as a plain C++ value (CAF would need an inspect overload only to
// serialize it).
#pragma once

#include <caf/all.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "troupe/protocol/transport.hpp"
#include "troupe/protocol/wire.hpp"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::wire::Message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::Origin)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<troupe::wire::RouteStage>)

namespace troupe::actors {

// (send_atom, address, message): to the node at that address. (reply_atom, route, message): to
// the client behind that route.
using send_atom = caf::atom_constant<caf::atom("send")>;
using reply_atom = caf::atom_constant<caf::atom("reply")>;
// (wire_atom, origin, message): a decoded frame from a peer or a client; a message from this node
// itself comes from Origin::peer(its own address).
using wire_atom = caf::atom_constant<caf::atom("wire")>;
// (peer_lost_atom, address[, name]): the connection to a peer broke, or the mesh declared it gone.
// (route_gone_atom[, route]): a client went away.
using peer_lost_atom = caf::atom_constant<caf::atom("peerlost")>;
using route_gone_atom = caf::atom_constant<caf::atom("routegone")>;
// Start-up wiring and timers (the node actor's mesh protocol; the stage's look for idle sessions).
using init_atom = caf::atom_constant<caf::atom("init")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
// (load_atom, begin, end): hold layers [begin, end) (0, 0: none). (loaded_atom, begin, end):
// the layers the stage holds now.
using load_atom = caf::atom_constant<caf::atom("load")>;
using loaded_atom = caf::atom_constant<caf::atom("loaded")>;
// (pass_atom, ticket): run the rows ready from every session through the layers, as one batch
// (a ticket other than the stage's latest: a pass already run).
using pass_atom = caf::atom_constant<caf::atom("pass")>;
// (reroute_atom, session id): a session needs a route; (route_atom, stages, problem, wire id): one
// to take (none, and why), and the id the stages are to know the session by on it.
// (reroute_atom, attempt): that attempt's wait for a route is over.
using reroute_atom = caf::atom_constant<caf::atom("reroute")>;
using route_atom = caf::atom_constant<caf::atom("route")>;
// (ended_atom, session id): a session is over. (leave_atom): tell the mesh this node leaves.
using ended_atom = caf::atom_constant<caf::atom("ended")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
// (discovered_atom, address): a node of this model was heard of there (LAN discovery).
using discovered_atom = caf::atom_constant<caf::atom("found")>;

// The bridge to the network (an actor_companion run on the transport's own thread): encodes
// messages into frames and puts them on the sockets. Incoming frames it decodes and hands to the
// node or stage actor as wire_atom messages.
using TransportActor = caf::typed_actor<
    caf::reacts_to<send_atom, std::string, wire::Message>,   // from every actor
    caf::reacts_to<reply_atom, std::string, wire::Message>>;  // from the node and session actors

// The mesh protocol, the clients' requests, and the sessions that entered at this node.
using NodeActor = caf::typed_actor<
    caf::reacts_to<init_atom>,                              // itself, once: join the mesh
    caf::reacts_to<tick_atom>,                              // itself, every kMeshTick
    caf::reacts_to<wire_atom, Origin, wire::Message>,       // gossip, plans, requests, results
    caf::reacts_to<loaded_atom, int, int>,                  // the stage
    caf::reacts_to<reroute_atom, uint64_t>,                 // a session
    caf::reacts_to<ended_atom, uint64_t>,                   // a session
    caf::reacts_to<peer_lost_atom, std::string>,            // the transport
    caf::reacts_to<route_gone_atom, std::string>,           // the transport
    caf::reacts_to<discovered_atom, std::string>,           // NodeActors (the LAN beacon)
    caf::reacts_to<leave_atom>>;                            // NodeActors

// The layer range this node holds, run for every session that passes through it.
using StageActor = caf::typed_actor<
    caf::reacts_to<init_atom, TransportActor, NodeActor>,   // NodeActors, once: where to send
    caf::reacts_to<wire_atom, Origin, wire::Message>,       // session_start, step, activations, end
    caf::reacts_to<load_atom, int, int>,                    // the node actor
    caf::reacts_to<peer_lost_atom, std::string>,            // the node actor
    caf::reacts_to<pass_atom, uint64_t>,                    // itself, while rows are ready
    caf::reacts_to<tick_atom>>;                             // itself, while it holds sessions

// One completion that entered through this node.
using SessionActor = caf::typed_actor<
    caf::reacts_to<init_atom>,                                                // itself, once
    caf::reacts_to<wire_atom, Origin, wire::Message>,                         // sampled, error
    caf::reacts_to<peer_lost_atom, std::string, std::string>,                 // the node actor
    caf::reacts_to<route_atom, std::vector<wire::RouteStage>, std::string, uint64_t>,  // the node actor
    caf::reacts_to<route_gone_atom>,                                          // the node actor
    caf::reacts_to<reroute_atom, int>>;                                       // itself (a timeout)

}  // namespace troupe::actors
