// A client's connection to one node of the mesh (`troupe generate`, `chat`, `status`, tests):
// one DEALER socket to the node's ROUTER, with a monitor so that a node that exits or goes silent
// ends the wait with an error instead of a hang.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "troupe/protocol/wire.hpp"

namespace troupe::net {

class MeshClient {
 public:
  // Connects to `peer` (host:port); RuntimeFailure naming it when nothing answers within
  // `connect_timeout`.
  explicit MeshClient(const std::string& peer,
                      std::chrono::milliseconds connect_timeout = std::chrono::seconds(5));
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
