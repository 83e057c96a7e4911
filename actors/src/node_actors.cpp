#include "troupe/actors/node_actors.hpp"

#include <stdexcept>

#include "node_actor.hpp"
#include "stage_actor.hpp"
#include "transport_actor.hpp"

namespace troupe::actors {

struct NodeActors::Impl {
  std::unique_ptr<TransportCompanion> transport;
  NodeActor node;
  StageActor stage;
};

NodeActors::NodeActors(caf::actor_system& system, const NodeContext* context, Transport* transport,
                       Options options)
    : impl_(std::make_unique<Impl>()) {
  if (!context->random) throw std::invalid_argument("NodeContext::random is required (session ids)");
  Impl& x = *impl_;
  x.transport = std::make_unique<TransportCompanion>(system, context, transport);
  const TransportActor to = x.transport->handle();
  x.stage = options.detached_stage ? system.spawn<caf::detached>(actors::stage_actor, context)
                                   : system.spawn(actors::stage_actor, context);
  x.node = system.spawn(actors::node_actor, context, to, x.stage);
  caf::anon_send(x.stage, init_atom::value, to, x.node);
  x.transport->start(x.node, x.stage);
}

NodeActors::~NodeActors() { stop(); }

const NodeActor& NodeActors::node_actor() const { return impl_->node; }
const StageActor& NodeActors::stage_actor() const { return impl_->stage; }

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
  if (x.node) caf::anon_send_exit(x.node, caf::exit_reason::user_shutdown);
  if (x.stage) caf::anon_send_exit(x.stage, caf::exit_reason::user_shutdown);
  x.node = NodeActor{};
  x.stage = StageActor{};
  x.transport->stop();  // no more frames in or out
  x.transport.reset();
}

}  // namespace troupe::actors
