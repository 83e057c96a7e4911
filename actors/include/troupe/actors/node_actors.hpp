// The actors of one node (their interfaces: interfaces.hpp), spawned in an actor system over a
// Transport: what Node runs over ZeroMQ on a device, and what the simulator runs, unchanged, over
// its virtual links on CAF's deterministic test coordinator (reaching in only through the
// context's discovery::SimHook).
#pragma once

#include <caf/all.hpp>
#include <memory>

#include "troupe/actors/interfaces.hpp"
#include "troupe/actors/node_context.hpp"
#include "troupe/protocol/transport.hpp"

namespace troupe::actors {

class NodeActors {
 public:
  struct Options {
    // The stage on a thread of its own, so that a long prompt batch or a load never holds up
    // the membership protocol and clients. The simulator runs every actor on its one thread.
    bool detached_stage = true;
  };

  // `context` and `transport` must outlive the actors; the transport starts here.
  NodeActors(caf::actor_system& system, const NodeContext* context, Transport* transport, Options options);
  ~NodeActors();  // stop()s
  NodeActors(const NodeActors&) = delete;
  NodeActors& operator=(const NodeActors&) = delete;

  const NodeActor& node_actor() const;
  const StageActor& stage_actor() const;
  // Tells the mesh this node leaves (the node actor sends the word out; asynchronous).
  void leave();
  // A node of this model was heard of at `address` (LAN discovery): joined as if named by --join.
  void discovered(const std::string& address);
  // Sends every actor an exit message and closes the transport: nothing more comes in or goes
  // out. The actors end as their system runs them (sessions with the node actor they link to).
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe::actors
