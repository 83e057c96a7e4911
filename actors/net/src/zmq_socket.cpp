#include "zmq_socket.hpp"

#include <atomic>
#include <cstring>

#include "troupe/protocol/wire.hpp"

namespace troupe::net::zmq_socket {

std::string endpoint(const std::string& address) { return "tcp://" + address; }

void configure(zmq::socket_t& socket) {
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::heartbeat_ivl, 1000);
  socket.set(zmq::sockopt::heartbeat_timeout, 5000);
  socket.set(zmq::sockopt::heartbeat_ttl, 5000);
  // A frame over the limit closes the connection inside ZeroMQ, before it is buffered.
  socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(wire::kMaxFrameBytes));
  socket.set(zmq::sockopt::sndhwm, 100000);
  socket.set(zmq::sockopt::reconnect_ivl, 100);
  socket.set(zmq::sockopt::reconnect_ivl_max, 1000);
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

std::optional<uint16_t> read_event(zmq::socket_t& monitor) {
  zmq::message_t event;
  if (!monitor.recv(event, zmq::recv_flags::dontwait)) return std::nullopt;
  uint16_t id = 0;
  if (event.size() >= 2) std::memcpy(&id, event.data(), 2);
  // The second part names the endpoint; every part must be read.
  while (event.more()) {
    if (!monitor.recv(event, zmq::recv_flags::none)) break;
  }
  return id;
}

}  // namespace troupe::net::zmq_socket
