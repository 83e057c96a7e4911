#include "troupe/net/client.hpp"

#include "troupe/model/error.hpp"
#include "troupe/net/addresses.hpp"
#include "zmq_socket.hpp"

namespace troupe::net {

struct MeshClient::Impl {
  std::string peer;
  zmq::context_t context{1};
  zmq::socket_t dealer{context, zmq::socket_type::dealer};
  zmq::socket_t monitor;
  bool insecure = false;
  bool connected = false;  // the handshake succeeded
  bool refused = false;    // the handshake failed

  // Reads monitor events; false once the connection has broken.
  bool still_connected() {
    while (auto event = zmq_socket::read_event(monitor)) {
      if (event->id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) connected = true;
      if (event->id & zmq_socket::kHandshakeFailed) refused = true;
      if (event->id == ZMQ_EVENT_DISCONNECTED && connected) return false;
    }
    return true;
  }
};

MeshClient::MeshClient(const std::string& peer, const MeshSecurity& security,
                       std::chrono::milliseconds connect_timeout)
    : impl_(std::make_unique<Impl>()) {
  Impl& c = *impl_;
  c.peer = peer;
  c.insecure = security.is_insecure();
  zmq_socket::configure(c.dealer, peer);
  zmq_socket::secure_client(c.dealer, security);
  c.monitor = zmq_socket::monitor(c.context, c.dealer,
                                  ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED | zmq_socket::kHandshakeFailed);
  try {
    c.dealer.connect(endpoint(peer));
  } catch (const zmq::error_t& e) {
    throw InputError("--peer " + peer + ": not an address (" + e.what() + ")");
  }
  const auto deadline = std::chrono::steady_clock::now() + connect_timeout;
  while (!c.connected) {
    zmq::pollitem_t item{c.monitor.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(50));
    c.still_connected();
    if (c.refused) {
      throw InputError("peer " + peer + " refused the handshake: " +
                       (c.insecure ? "this client runs --insecure and that node does not"
                                   : "that node is not of this mesh (another mesh secret, or it runs --insecure)"));
    }
    if (!c.connected && std::chrono::steady_clock::now() > deadline) {
      throw RuntimeFailure("cannot reach peer " + peer + ": nothing answers there");
    }
  }
}

MeshClient::~MeshClient() = default;

void MeshClient::send(const wire::Message& message) {
  const std::vector<uint8_t> frame = wire::encode(message);
  zmq::message_t m(frame.data(), frame.size());
  if (!impl_->dealer.send(m, zmq::send_flags::dontwait)) {
    throw RuntimeFailure("cannot send to peer " + impl_->peer);
  }
}

wire::Message MeshClient::receive(std::chrono::milliseconds timeout) {
  if (auto m = poll(timeout)) return std::move(*m);
  throw RuntimeFailure("no answer from peer " + impl_->peer + " within " +
                       std::to_string(timeout.count() / 1000) + " s");
}

std::optional<wire::Message> MeshClient::poll(std::chrono::milliseconds wait) {
  Impl& c = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (true) {
    zmq::message_t m;
    if (c.dealer.recv(m, zmq::recv_flags::dontwait)) {
      if (m.more()) {
        while (m.more() && c.dealer.recv(m, zmq::recv_flags::none)) {
        }
        throw RuntimeFailure("peer " + c.peer + " sent a multi-part message");
      }
      try {
        return wire::decode({static_cast<const uint8_t*>(m.data()), m.size()});
      } catch (const InputError& e) {
        throw RuntimeFailure("peer " + c.peer + " sent a malformed frame: " + e.what());
      }
    }
    if (!c.still_connected()) throw RuntimeFailure("lost the connection to peer " + c.peer);
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return std::nullopt;
    zmq::pollitem_t items[] = {{c.dealer.handle(), 0, ZMQ_POLLIN, 0},
                               {c.monitor.handle(), 0, ZMQ_POLLIN, 0}};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    try {
      zmq::poll(items, 2, std::min(left, std::chrono::milliseconds(500)));
    } catch (const zmq::error_t& e) {
      // A signal (Ctrl-C in `troupe chat`) is the caller's to look at: return as on a timeout.
      if (e.num() != EINTR) throw;
      return std::nullopt;
    }
  }
}

}  // namespace troupe::net
