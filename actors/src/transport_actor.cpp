#include "transport_actor.hpp"

#include <caf/actor_companion.hpp>
#include <caf/scoped_execution_unit.hpp>
#include <spdlog/spdlog.h>

#include <optional>

#include "troupe/model/error.hpp"

namespace troupe::actors {

bool Routes::for_stage(wire::MessageType t) {
  using T = wire::MessageType;
  return t == T::session_start || t == T::step || t == T::activations || t == T::session_end ||
         t == T::session_probe;
}

void drop_frame(const NodeContext& node, const Origin& from, const std::string& why) {
  if (const auto line = node.metrics->dropped_frames.dropped(from.describe(), why, node.clock->now())) {
    spdlog::warn("{}", *line);
  }
}

namespace {

// Why a frame of `type` cannot come from `origin`, or nothing: types below 16 pass between nodes
// and come from peers only, generate and status_request from clients only, and the rest (text,
// done, status) go to clients and are never received.
std::optional<std::string> wrong_direction(wire::MessageType type, const Origin& origin) {
  using T = wire::MessageType;
  const bool between_nodes = static_cast<int>(type) < 16;
  const bool client_request = type == T::generate || type == T::status_request;
  if (between_nodes && !origin.is_peer()) return std::string("a client sent ") + wire::type_name(type) + ", which only members send";
  if (client_request && !origin.is_client()) return std::string("a member sent ") + wire::type_name(type) + ", which only clients send";
  if (!between_nodes && !client_request) return std::string("a ") + wire::type_name(type) + " frame, which nodes send and never take";
  return std::nullopt;
}

}  // namespace

namespace {
bool decode_step(const wire::Message& m) {
  return std::holds_alternative<wire::Step>(m.body) || std::holds_alternative<wire::Sampled>(m.body);
}
}  // namespace

struct TransportCompanion::Impl {
  const NodeContext* node = nullptr;
  Transport* transport = nullptr;
  caf::scoped_execution_unit unit;
  caf::strong_actor_ptr handle;
  caf::actor_companion* self = nullptr;
  Routes routes;  // touched on the transport's thread only, after start()

  // The handlers of TransportActor's messages.
  void on_send(const std::string& address, wire::Message message) {
    if (address == node->address) {
      routes.to_local(send_now(self), Origin::peer(node->address), std::move(message));
      return;
    }
    try {
      const auto type = message.type();
      const bool control = type == wire::MessageType::gossip || type == wire::MessageType::plan;
      Frame frame = wire::encode(message);
      // A decode step's one-packet frames (the token to the first stage, the sampled token back)
      // go on both lanes, two TCP connections, and the receiver takes whichever comes first: a
      // one-packet message whose packet is lost waits for TCP's retransmission timeout (200 ms
      // at least), which at 20% loss was most tokens. Not activations: a position's activations
      // may follow a prompt's batch on the data lane, and must not overtake it.
      if (decode_step(message)) transport->send(address, frame, Transport::Lane::control);
      transport->send(address, std::move(frame), control ? Transport::Lane::control : Transport::Lane::data);
    } catch (const InputError& e) {
      spdlog::error("cannot send {} to {}: {}", wire::type_name(message.type()), address, e.what());
    }
  }
  void on_reply(const std::string& route, const wire::Message& message) {
    try {
      transport->reply(route, wire::encode(message));
    } catch (const InputError& e) {
      spdlog::error("cannot reply {}: {}", wire::type_name(message.type()), e.what());
    }
  }

  // The transport's events, on its thread. A frame that does not decode, or of a type its sender
  // does not send, goes no further.
  void on_frame(Origin origin, const Frame& frame) {
    wire::Message message;
    try {
      message = wire::decode(frame);
    } catch (const std::exception& e) {  // InputError; bad_alloc from a hostile header
      drop_frame(*node, origin, "a frame of " + std::to_string(frame.size()) + " bytes: " + e.what());
      return;
    }
    if (const auto why = wrong_direction(message.type(), origin)) {
      drop_frame(*node, origin, *why);
      return;
    }
    routes.to_local(send_now(self), std::move(origin), std::move(message));
  }
  void on_peer_lost(const std::string& address) { self->send(routes.node, peer_lost_atom::value, address); }
  void on_route_gone(const std::string& route) { self->send(routes.node, route_gone_atom::value, route); }

  TransportActor::behavior_type behavior() {
    return {
        [this](send_atom, const std::string& address, wire::Message& message) { on_send(address, std::move(message)); },
        [this](reply_atom, const std::string& route, const wire::Message& message) { on_reply(route, message); },
    };
  }
};

TransportCompanion::TransportCompanion(caf::actor_system& system, const NodeContext* node, Transport* transport)
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
  impl->self->become(std::move(impl->behavior().unbox()));
}

TransportCompanion::~TransportCompanion() { stop(); }

TransportActor TransportCompanion::handle() const { return caf::actor_cast<TransportActor>(impl_->handle); }

void TransportCompanion::start(NodeActor node_actor, StageActor stage_actor) {
  Impl* impl = impl_.get();
  impl->routes.transport = handle();
  impl->routes.node = std::move(node_actor);
  impl->routes.stage = std::move(stage_actor);
  Transport::Events events;
  events.frame = [impl](Origin origin, Frame frame) { impl->on_frame(std::move(origin), frame); };
  events.peer_lost = [impl](const std::string& address) { impl->on_peer_lost(address); };
  events.route_gone = [impl](const std::string& route) { impl->on_route_gone(route); };
  // Connections that come up need no word: the membership protocol hears from the peer itself.
  impl->transport->start(std::move(events));
}

void TransportCompanion::stop() {
  if (!impl_->handle) return;
  // The transport's thread is the companion's: once it has stopped, nothing else runs it.
  impl_->transport->stop();
  impl_->routes = Routes{};
  impl_->self->on_enqueue(nullptr);  // later messages to it are dropped
  impl_->self->cleanup(caf::make_error(caf::exit_reason::user_shutdown), &impl_->unit);
  impl_->handle = nullptr;
}

}  // namespace troupe::actors
