#include "troupe/actors/node_actors.hpp"

#include "actors.hpp"
#include "messages.hpp"

namespace troupe::actors {

struct NodeActors::Impl {
  std::unique_ptr<TransportActor> transport;
  caf::actor node, stage;
};

NodeActors::NodeActors(caf::actor_system& system, const NodeContext* context, Transport* transport,
                       Options options)
    : impl_(std::make_unique<Impl>()) {
  Impl& x = *impl_;
  x.transport = std::make_unique<TransportActor>(system, context, transport);
  const caf::actor to = x.transport->handle();
  x.stage = options.detached_stage ? system.spawn<caf::detached>(actors::stage_actor, context)
                                   : system.spawn(actors::stage_actor, context);
  x.node = system.spawn(actors::node_actor, context, to, x.stage);
  caf::anon_send(x.stage, init_atom::value, to, x.node);
  x.transport->start(x.node, x.stage);
}

NodeActors::~NodeActors() { stop(); }

const caf::actor& NodeActors::node_actor() const { return impl_->node; }
const caf::actor& NodeActors::stage_actor() const { return impl_->stage; }

void NodeActors::leave() {
  if (impl_->node) caf::anon_send(impl_->node, leave_atom::value);
}

void NodeActors::discovered(const std::string& address) {
  if (impl_->node) caf::anon_send(impl_->node, discovered_atom::value, address);
}

void NodeActors::stop() {
  Impl& x = *impl_;
  if (!x.transport) return;
  // The actors hold each other's handles: they end by exit messages, not by going out of scope.
  for (auto* a : {&x.node, &x.stage}) {
    if (*a) caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
    *a = nullptr;
  }
  x.transport->stop();  // no more frames in or out
  x.transport.reset();
}

}  // namespace troupe::actors
