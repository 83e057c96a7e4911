// The door of a node's listening socket: a ZAP handler (ZeroMQ's authentication hook, on
// inproc://zeromq.zap.01 of the transport's context) that admits only the mesh's client key,
// and a monitor of the socket that logs every connection whose handshake failed (a peer without
// the mesh's keys, without CURVE, or --insecure when the mesh is not), with its address, through
// a RefusalLog. Such a peer never gets a frame through: ZeroMQ closes the connection before
// anything reaches the codec. Both run on the guard's own thread, so that a busy transport never
// holds up a handshake and the peer's address is read while its connection is still open.
#pragma once

#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "troupe/net/mesh_key.hpp"
#include "troupe/net/refusal_log.hpp"

namespace troupe::net {

class HandshakeGuard {
 public:
  // Call before `router` binds. `router` and `context` must outlive the guard.
  HandshakeGuard(zmq::context_t& context, zmq::socket_t& router, const MeshSecurity& security);
  ~HandshakeGuard();
  HandshakeGuard(const HandshakeGuard&) = delete;
  HandshakeGuard& operator=(const HandshakeGuard&) = delete;

  // Connections refused so far (handshake failed or key not admitted).
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  void loop();
  void answer_zap();
  void read_monitor();
  void refuse(const std::string& address, const std::string& why);

  Key32 client_key_{};
  bool secure_;
  zmq::socket_t zap_;
  zmq::socket_t monitor_;
  // The peer address of each open incoming connection, by file descriptor (ACCEPTED and
  // DISCONNECTED events carry the descriptor; a failed handshake is followed by the DISCONNECTED
  // of its connection).
  std::map<int, std::string> accepted_;
  std::optional<std::string> failed_;  // why the last handshake failed, until its DISCONNECTED
  RefusalLog log_;
  std::atomic<uint64_t> refused_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace troupe::net
