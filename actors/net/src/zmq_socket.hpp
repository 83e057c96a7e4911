// What the node's transport and the clients share about ZeroMQ sockets: the options every
// socket gets, and reading connection events from a socket monitor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <zmq.hpp>

namespace troupe::net::zmq_socket {

// "host:port" -> "tcp://host:port".
std::string endpoint(const std::string& address);

// LINGER 0 (closing never waits), ZMTP heartbeats (a silent connection is dropped after a few
// seconds, which half-open TCP connections would never do), a receive limit of one frame.
void configure(zmq::socket_t& socket);

// A PAIR socket receiving `events` of `socket` (ZMQ_EVENT_* bits); call before connect/bind.
zmq::socket_t monitor(zmq::context_t& context, zmq::socket_t& socket, int events);

// One event from a monitor socket (ZMQ_EVENT_* value), or nothing when none is waiting.
std::optional<uint16_t> read_event(zmq::socket_t& monitor);

}  // namespace troupe::net::zmq_socket
