#include "zmq_socket.hpp"

#include <atomic>
#include <cstring>

#include "troupe/net/addresses.hpp"
#include "troupe/protocol/wire.hpp"

namespace troupe::net::zmq_socket {

void configure(zmq::socket_t& socket, const std::string& address) {
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::heartbeat_ivl, 1000);
  socket.set(zmq::sockopt::heartbeat_timeout, 5000);
  socket.set(zmq::sockopt::heartbeat_ttl, 5000);
  // A frame over the limit closes the connection inside ZeroMQ, before it is buffered.
  socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(wire::kMaxFrameBytes));
  socket.set(zmq::sockopt::sndhwm, 100000);
  socket.set(zmq::sockopt::reconnect_ivl, 100);
  socket.set(zmq::sockopt::reconnect_ivl_max, 1000);
  // A connect that has not completed in a second is begun again: a lost SYN then costs a second,
  // not the kernel's doubling retransmissions (1, 3, 7, 15 s), which on a lossy link outlast
  // any wait a user would sit through.
  socket.set(zmq::sockopt::connect_timeout, 1000);
  // Only for IPv6 addresses: with it on, a host name that also has an IPv6 address ("localhost")
  // would be dialled there, where a node listening on 127.0.0.1 does not answer.
  if (is_ipv6(address)) socket.set(zmq::sockopt::ipv6, 1);
}

void secure_server(zmq::socket_t& socket, const MeshSecurity& security) {
  if (security.is_insecure()) return;
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, zmq::buffer(security.server().secret_key));
  socket.set(zmq::sockopt::curve_publickey, zmq::buffer(security.server().public_key));
  // The handler on inproc://zeromq.zap.01 (handshake_guard.hpp) checks the client's key.
  socket.set(zmq::sockopt::zap_domain, "troupe");
}

void secure_client(zmq::socket_t& socket, const MeshSecurity& security) {
  if (security.is_insecure()) return;
  socket.set(zmq::sockopt::curve_serverkey, zmq::buffer(security.server().public_key));
  socket.set(zmq::sockopt::curve_publickey, zmq::buffer(security.client().public_key));
  socket.set(zmq::sockopt::curve_secretkey, zmq::buffer(security.client().secret_key));
}

zmq::socket_t monitor(zmq::context_t& context, zmq::socket_t& socket, int events) {
  static std::atomic<int> counter{0};
  const std::string address = "inproc://troupe-monitor-" + std::to_string(counter++);
  if (zmq_socket_monitor(socket.handle(), address.c_str(), events) != 0) throw zmq::error_t();
  zmq::socket_t pair(context, zmq::socket_type::pair);
  pair.set(zmq::sockopt::linger, 0);
  pair.connect(address);
  return pair;
}

std::optional<Event> read_event(zmq::socket_t& monitor) {
  zmq::message_t message;
  if (!monitor.recv(message, zmq::recv_flags::dontwait)) return std::nullopt;
  Event event;
  if (message.size() >= 6) {
    std::memcpy(&event.id, message.data(), 2);
    std::memcpy(&event.value, static_cast<const char*>(message.data()) + 2, 4);
  }
  // The second part names the endpoint; every part must be read.
  while (message.more()) {
    if (!monitor.recv(message, zmq::recv_flags::none)) break;
  }
  return event;
}

}  // namespace troupe::net::zmq_socket
