// A client's connection to one node of the mesh (`troupe generate`, `chat`, `status`, tests):
// one DEALER socket to the node's ROUTER, under CURVE with the mesh's keys (or none, for an
// --insecure mesh), with a monitor so that a node that exits or goes silent ends the wait with an
// error instead of a hang.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "troupe/net/mesh_key.hpp"
#include "troupe/protocol/wire.hpp"

namespace troupe::net {

class MeshClient {
 public:
  // Room for several lost SYNs and handshake messages on a lossy link.
  static constexpr std::chrono::milliseconds kConnectTimeout{10000};

  // Connects to `peer` (host:port) and completes the handshake: RuntimeFailure naming it when
  // nothing answers within `connect_timeout`, InputError when it refuses the handshake (a node
  // of another mesh, or --insecure on one side only).
  MeshClient(const std::string& peer, const MeshSecurity& security,
             std::chrono::milliseconds connect_timeout = kConnectTimeout);
  ~MeshClient();
  MeshClient(const MeshClient&) = delete;
  MeshClient& operator=(const MeshClient&) = delete;

  void send(const wire::Message& message);
  // The next message from the node. RuntimeFailure naming the peer when the connection breaks,
  // when nothing comes within `timeout`, or when what comes is not a well-formed frame.
  wire::Message receive(std::chrono::milliseconds timeout);
  // As receive, but nullopt when nothing has come within `wait`: for callers that must look
  // up now and then (an HTTP stream checks that its client is still there).
  std::optional<wire::Message> poll(std::chrono::milliseconds wait);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe::net
