#include "troupe/actors/node_actors.hpp"

#include "actors.hpp"
#include "messages.hpp"

namespace troupe::actors {

namespace {

// Holds each message of the stage for `delay()` on its way to the transport, the node actor or
// the stage itself; in order, as the delays only grow while the device is busy.
caf::behavior stage_outbox(caf::event_based_actor* self, caf::actor transport, caf::actor node, caf::actor stage,
                           std::function<caf::timespan()> delay) {
  return {
      [=](prefill_atom a, uint64_t id) { self->delayed_send(stage, delay(), a, id); },
      [=](send_atom a, std::string& address, wire::Message& m) {
        self->delayed_send(transport, delay(), a, std::move(address), std::move(m));
      },
      [=](wire_atom a, std::string& route, wire::Message& m) {
        self->delayed_send(node, delay(), a, std::move(route), std::move(m));
      },
      [=](loaded_atom a, int begin, int end) { self->delayed_send(node, delay(), a, begin, end); },
  };
}

}  // namespace

struct NodeActors::Impl {
  std::unique_ptr<TransportActor> transport;
  caf::actor node, stage, outbox;
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
  if (options.stage_output_delay) {
    x.outbox = system.spawn(stage_outbox, to, x.node, x.stage, options.stage_output_delay);
    caf::anon_send(x.stage, init_atom::value, x.outbox, x.outbox, x.outbox);
  } else {
    caf::anon_send(x.stage, init_atom::value, to, x.node, x.stage);
  }
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
  for (auto* a : {&x.node, &x.stage, &x.outbox}) {
    if (*a) caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
    *a = nullptr;
  }
  x.transport->stop();  // no more frames in or out
  x.transport.reset();
}

}  // namespace troupe::actors
