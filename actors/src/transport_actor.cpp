// TransportActor: the bridge between the actor system and the Transport. It is an
// actor_companion (CAF's gateway to a foreign event loop) whose mailbox is handled on the
// transport's own thread: messages to it are posted there, so that encoding a frame and putting
// it on a socket happen in one step, and incoming frames are decoded there and sent straight to
// the actor they are for. A frame thus costs no extra thread hand-off on either side.
#include <caf/actor_companion.hpp>
#include <caf/scoped_execution_unit.hpp>
#include <spdlog/spdlog.h>

#include "actors.hpp"
#include "messages.hpp"
#include "troupe/model/error.hpp"

namespace troupe::actors {

caf::actor Routes::local_handler(wire::MessageType t) const {
  using T = wire::MessageType;
  const bool for_stage =
      t == T::session_start || t == T::step || t == T::activations || t == T::session_end;
  return for_stage && stage ? stage : node;
}

void send_to(caf::event_based_actor* self, const NodeContext* node, const Routes& routes,
             const std::string& address, wire::Message message) {
  if (address == node->address) {
    const caf::actor to = routes.local_handler(message.type());
    self->send(to, wire_atom::value, std::string(), std::move(message));
  } else {
    self->send(routes.transport, send_atom::value, address, std::move(message));
  }
}

struct TransportActor::Impl {
  const NodeContext* node;
  Transport* transport;
  caf::scoped_execution_unit unit;
  caf::strong_actor_ptr handle;
  caf::actor_companion* self;
  Routes routes;  // touched on the transport's thread only, after start()

  // A message from the network to the actor that handles it.
  void dispatch(const std::string& route, wire::Message message) {
    self->send(routes.local_handler(message.type()), wire_atom::value, route, std::move(message));
  }
};

TransportActor::TransportActor(caf::actor_system& system, const NodeContext* node,
                               Transport* transport)
    : impl_(std::make_unique<Impl>()) {
  Impl* impl = impl_.get();
  impl->node = node;
  impl->transport = transport;
  impl->unit.system_ptr(&system);
  impl->handle = caf::actor_cast<caf::strong_actor_ptr>(system.spawn<caf::actor_companion>());
  impl->self = static_cast<caf::actor_companion*>(caf::actor_cast<caf::abstract_actor*>(impl->handle));
  impl->self->on_enqueue([impl](caf::mailbox_element_ptr message) {
    // std::function needs a copyable task; the element is handled once.
    auto shared = std::make_shared<caf::mailbox_element_ptr>(std::move(message));
    impl->transport->post([impl, shared] { impl->self->activate(&impl->unit, **shared); });
  });
  impl->self->become(caf::behavior{
      [impl](send_atom, const std::string& address, wire::Message& message) {
        if (address == impl->node->address) {
          impl->dispatch("", std::move(message));
          return;
        }
        try {
          const auto type = message.type();
          const bool control = type == wire::MessageType::gossip || type == wire::MessageType::plan;
          impl->transport->send(address, wire::encode(message), control ? Transport::Lane::control : Transport::Lane::data);
        } catch (const InputError& e) {
          spdlog::error("cannot send {} to {}: {}", wire::type_name(message.type()), address, e.what());
        }
      },
      [impl](reply_atom, const std::string& route, const wire::Message& message) {
        try {
          impl->transport->reply(route, wire::encode(message));
        } catch (const InputError& e) {
          spdlog::error("cannot reply {}: {}", wire::type_name(message.type()), e.what());
        }
      },
  });
}

TransportActor::~TransportActor() { stop(); }

caf::actor TransportActor::handle() const { return caf::actor_cast<caf::actor>(impl_->handle); }

void TransportActor::start(caf::actor node_actor, caf::actor stage_actor) {
  Impl* impl = impl_.get();
  impl->routes.transport = handle();
  impl->routes.node = std::move(node_actor);
  impl->routes.stage = std::move(stage_actor);
  Transport::Events events;
  events.frame = [impl](std::string route, Frame frame) {
    wire::Message message;
    try {
      message = wire::decode(frame);
    } catch (const InputError& e) {
      spdlog::warn("dropped a frame of {} bytes: {}", frame.size(), e.what());
      return;
    }
    impl->dispatch(route, std::move(message));
  };
  events.peer_lost = [impl](const std::string& address) {
    impl->self->send(impl->routes.node, peer_lost_atom::value, address);
  };
  events.peer_connected = [impl](const std::string& address) {
    impl->self->send(impl->routes.node, peer_up_atom::value, address);
  };
  events.route_gone = [impl](const std::string& route) {
    impl->self->send(impl->routes.node, route_gone_atom::value, route);
  };
  impl->transport->start(std::move(events));
}

void TransportActor::stop() {
  if (!impl_->handle) return;
  // The transport's thread is the companion's: once it has stopped, nothing else runs it.
  impl_->transport->stop();
  impl_->routes = Routes{};
  impl_->self->on_enqueue(nullptr);  // later messages to it are dropped
  impl_->self->cleanup(caf::make_error(caf::exit_reason::user_shutdown), &impl_->unit);
  impl_->handle = nullptr;
}

}  // namespace troupe::actors
