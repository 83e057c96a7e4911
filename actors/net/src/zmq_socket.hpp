// What the node's transport and the clients share about ZeroMQ sockets: the options every
// socket gets (security included), and reading connection events from a socket monitor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "troupe/net/mesh_key.hpp"

namespace troupe::net::zmq_socket {

// LINGER 0 (closing never waits), ZMTP heartbeats (a silent connection is dropped after a few
// seconds, which half-open TCP connections would never do), a receive limit of one frame, and
// IPv6 where `address` (the one the socket binds or connects to) is an IPv6 one.
void configure(zmq::socket_t& socket, const std::string& address);

// CURVE with the mesh's keys (nothing when the mesh is insecure): a node's listening socket is
// the server, every socket that connects to one is a client. Call before bind/connect.
void secure_server(zmq::socket_t& socket, const MeshSecurity& security);
void secure_client(zmq::socket_t& socket, const MeshSecurity& security);

// A PAIR socket receiving `events` of `socket` (ZMQ_EVENT_* bits); call before connect/bind.
zmq::socket_t monitor(zmq::context_t& context, zmq::socket_t& socket, int events);

// One event from a monitor socket, or nothing when none is waiting. `value` is the event's
// number: the file descriptor of ACCEPTED and DISCONNECTED, the reason of a failed handshake.
struct Event {
  uint16_t id = 0;
  uint32_t value = 0;
};
std::optional<Event> read_event(zmq::socket_t& monitor);

// ZMQ_EVENT_HANDSHAKE_FAILED_*: a peer that does not hold this mesh's keys (or differs on
// --insecure).
inline constexpr int kHandshakeFailed = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                        ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

}  // namespace troupe::net::zmq_socket
