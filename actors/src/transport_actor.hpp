// The transport actor: the bridge between the actor system and the Transport. It is an
// actor_companion (CAF's gateway to a foreign event loop) whose mailbox is handled on the
// transport's own thread: messages to it are posted there, so that encoding a frame and putting
// it on a socket happen in one step, and incoming frames are decoded there and sent straight to
// the actor they are for. A frame thus costs no extra thread hand-off on either side.
//
// A companion is a dynamically typed actor that CAF does not schedule, so it cannot be spawned
// as a typed actor; its behavior is built as TransportActor's typed behavior (the compiler
// checks that it handles exactly the interface's messages) and installed unboxed, and the other
// actors hold the companion through a TransportActor handle (an actor_cast of it).
#pragma once

#include <caf/all.hpp>
#include <memory>

#include "actors.hpp"
#include "troupe/protocol/transport.hpp"

namespace troupe::actors {

class TransportCompanion {
 public:
  // Makes the companion; messages to handle() wait until start().
  TransportCompanion(caf::actor_system& system, const NodeContext* node, Transport* transport);
  ~TransportCompanion();  // stop()s
  TransportCompanion(const TransportCompanion&) = delete;
  TransportCompanion& operator=(const TransportCompanion&) = delete;

  TransportActor handle() const;
  // Starts the transport, delivering stage traffic to `stage` and everything else to `node`.
  void start(NodeActor node, StageActor stage);
  // Stops the transport and ends the companion.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe::actors
