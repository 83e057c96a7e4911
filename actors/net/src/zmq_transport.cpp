#include "troupe/net/zmq_transport.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <set>
#include <vector>

#include "handshake_guard.hpp"
#include "troupe/model/error.hpp"
#include "troupe/net/addresses.hpp"
#include "zmq_socket.hpp"

#include <zmq_addon.hpp>

namespace troupe::net {

namespace {

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

constexpr auto kExpectedPeerWarning = std::chrono::seconds(5);

std::string not_of_this_mesh(const MeshSecurity& security) {
  return security.is_insecure()
             ? "the handshake fails: that node is not --insecure (this one is)"
             : "the handshake fails: that node is not of this mesh (another mesh secret, or it runs --insecure)";
}

}  // namespace

struct ZmqTransport::Link {
  zmq::socket_t dealer;
  zmq::socket_t monitor;
  bool connected = false;  // the handshake succeeded and the connection has not broken since
  bool reached = false;    // a TCP connection came up at some point
  bool refused = false;    // the last handshake failed
};

struct ZmqTransport::Sockets {
  zmq::context_t context{1};
  zmq::socket_t router{context, zmq::socket_type::router};
  std::map<LinkKey, Link> links;  // by peer address and lane
  std::set<std::string> refused;  // peers whose handshake fails, logged once until it succeeds
  std::chrono::steady_clock::time_point next_warning = std::chrono::steady_clock::now() + kExpectedPeerWarning;
  // Declared last, so destroyed first: its sockets close before the context ends.
  std::unique_ptr<HandshakeGuard> guard;

  Link& link(const std::string& address, Lane lane, const MeshSecurity& security) {
    auto it = links.find({address, lane});
    if (it != links.end()) return it->second;
    Link l;
    l.dealer = zmq::socket_t(context, zmq::socket_type::dealer);
    zmq_socket::configure(l.dealer, address);
    zmq_socket::secure_client(l.dealer, security);
    l.monitor = zmq_socket::monitor(context, l.dealer,
                                    ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                        zmq_socket::kHandshakeFailed);
    l.dealer.connect(endpoint(address));
    return links.emplace(LinkKey{address, lane}, std::move(l)).first->second;
  }
};

ZmqTransport::ZmqTransport(const std::string& listen_address, const MeshSecurity& security)
    : listen_address_(listen_address), security_(security), sockets_(std::make_unique<Sockets>()) {
  zmq::socket_t& router = sockets_->router;
  zmq_socket::configure(router, listen_address);
  zmq_socket::secure_server(router, security);
  // A reply to a client that has gone fails loudly instead of vanishing.
  router.set(zmq::sockopt::router_mandatory, 1);
  sockets_->guard = std::make_unique<HandshakeGuard>(sockets_->context, router, security);
  try {
    router.bind(endpoint(listen_address));
  } catch (const zmq::error_t& e) {
    if (e.num() == EADDRINUSE || e.num() == EADDRNOTAVAIL || e.num() == EACCES) {
      throw RuntimeFailure("--listen " + listen_address + ": cannot listen there: " + e.what());
    }
    throw InputError("--listen " + listen_address + ": not an address to listen on (" + e.what() +
                     ")");
  }
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw RuntimeFailure("eventfd failed");
}

ZmqTransport::~ZmqTransport() {
  stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void ZmqTransport::expect_peer(const std::string& address, const std::string& flag) {
  expected_[address] = {flag, false};
}

uint64_t ZmqTransport::refused_handshakes() const {
  return sockets_ && sockets_->guard ? sockets_->guard->refused() : 0;
}

void ZmqTransport::start(Events events) {
  events_ = std::move(events);
  // The sockets move to the I/O thread; creating it is the memory barrier ZeroMQ asks for.
  thread_ = std::thread([this] { loop(); });
}
void ZmqTransport::push(Work work) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    queue_.push_back(std::move(work));
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void ZmqTransport::send(const std::string& address, Frame frame, Lane lane) {
  if (on_io_thread()) {
    send_now(address, frame, lane);
  } else {
    push({Work::Kind::send, address, lane, std::move(frame), {}});
  }
}

void ZmqTransport::reply(const std::string& route, Frame frame) {
  if (on_io_thread()) {
    reply_now(route, frame);
  } else {
    push({Work::Kind::reply, route, Lane::data, std::move(frame), {}});
  }
}

void ZmqTransport::post(std::function<void()> task) {
  push({Work::Kind::task, {}, Lane::data, {}, std::move(task)});
}

void ZmqTransport::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  queue_.clear();
  sockets_.reset();
  spdlog::info("transport: sent {} frames ({} bytes), received {} frames ({} bytes)", frames_sent_.load(),
               bytes_sent_.load(), frames_received_.load(), bytes_received_.load());
}

void ZmqTransport::reply_now(const std::string& route, const Frame& frame) {
  frames_sent_.fetch_add(1, std::memory_order_relaxed);
  bytes_sent_.fetch_add(frame.size(), std::memory_order_relaxed);
  zmq::message_t id(route.data(), route.size());
  zmq::message_t body(frame.data(), frame.size());
  try {
    const bool sent = sockets_->router.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait) &&
                      sockets_->router.send(body, zmq::send_flags::dontwait);
    if (!sent) spdlog::warn("reply to client {} dropped: its queue is full", hex(route));
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) {
      if (events_.route_gone) events_.route_gone(route);
    } else {
      spdlog::warn("reply to client {} failed: {}", hex(route), e.what());
    }
  }
}

void ZmqTransport::send_now(const std::string& address, const Frame& frame, Lane lane) {
  frames_sent_.fetch_add(1, std::memory_order_relaxed);
  bytes_sent_.fetch_add(frame.size(), std::memory_order_relaxed);
  zmq::message_t body(frame.data(), frame.size());
  try {
    Link& link = sockets_->link(address, lane, security_);  // connects on first use
    if (!link.dealer.send(body, zmq::send_flags::dontwait)) {
      spdlog::warn("frame to {} dropped: too many frames waiting for it", address);
      if (events_.peer_lost) events_.peer_lost(address);
    }
  } catch (const zmq::error_t& e) {
    spdlog::warn("frame to {} failed: {}", address, e.what());
  }
}

void ZmqTransport::run_queue() {
  std::deque<Work> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(queue_);
  }
  for (Work& work : batch) {
    if (stopping_) return;
    switch (work.kind) {
      case Work::Kind::send: send_now(work.destination, work.frame, work.lane); break;
      case Work::Kind::reply: reply_now(work.destination, work.frame); break;
      case Work::Kind::task: work.task(); break;
    }
  }
}

void ZmqTransport::loop() {
  io_thread_ = std::this_thread::get_id();
  std::vector<zmq::pollitem_t> items;
  std::vector<LinkKey> item_links;  // the link of each monitor and dealer item
  while (!stopping_) {
    items.clear();
    item_links.clear();
    items.push_back({sockets_->router.handle(), 0, ZMQ_POLLIN, 0});
    items.push_back({nullptr, wake_fd_, ZMQ_POLLIN, 0});
    for (auto& [key, link] : sockets_->links) {
      items.push_back({link.monitor.handle(), 0, ZMQ_POLLIN, 0});
      items.push_back({link.dealer.handle(), 0, ZMQ_POLLIN, 0});
      item_links.push_back(key);
    }
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(1000));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::error("transport poll failed: {}", e.what());
      continue;
    }
    if (stopping_) break;
    if (items[1].revents & ZMQ_POLLIN) {
      uint64_t count;
      [[maybe_unused]] ssize_t n = read(wake_fd_, &count, sizeof count);
      run_queue();
    }
    if (items[0].revents & ZMQ_POLLIN) receive_frames();
    for (std::size_t i = 0; i < item_links.size(); i++) {
      Link& link = sockets_->links.at(item_links[i]);
      if (items[2 + 2 * i].revents & ZMQ_POLLIN) read_link_events(item_links[i], link);
      if (items[3 + 2 * i].revents & ZMQ_POLLIN) {
        // Peers answer through their own connections; anything arriving here is dropped.
        zmq::message_t junk;
        while (link.dealer.recv(junk, zmq::recv_flags::dontwait)) {
        }
        spdlog::warn("dropped frames that {} sent back on our connection to it", item_links[i].first);
      }
    }
    warn_expected_peers();
  }
}

void ZmqTransport::receive_frames() {
  // Drain what is waiting, a bounded number at a time so sending is never starved.
  for (int i = 0; i < 256; i++) {
    std::vector<zmq::message_t> parts;
    zmq::recv_result_t got;
    try {
      got = zmq::recv_multipart(sockets_->router, std::back_inserter(parts), zmq::recv_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::warn("receive failed: {}", e.what());
      return;
    }
    if (!got) return;
    // A ROUTER prefixes the sender's routing id; anything but one frame after it (a REQ
    // envelope, a multi-part message) is not ours.
    if (parts.size() != 2) {
      spdlog::warn("dropped a message of {} parts from {}: troupe frames are single-part",
                   parts.size() - 1, parts.empty() ? "?" : hex(parts[0].to_string()));
      continue;
    }
    frames_received_.fetch_add(1, std::memory_order_relaxed);
    bytes_received_.fetch_add(parts[1].size(), std::memory_order_relaxed);
    const auto* data = static_cast<const uint8_t*>(parts[1].data());
    if (events_.frame) events_.frame(parts[0].to_string(), Frame(data, data + parts[1].size()));
  }
}

void ZmqTransport::read_link_events(const LinkKey& key, Link& link) {
  const std::string& address = key.first;
  while (auto event = zmq_socket::read_event(link.monitor)) {
    if (event->id == ZMQ_EVENT_CONNECTED) {
      link.reached = true;
    } else if (event->id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && !link.connected) {
      link.connected = true;
      link.refused = false;
      if (sockets_->refused.erase(address)) spdlog::info("{}: the handshake succeeds now", address);
      if (auto it = expected_.find(address); it != expected_.end()) it->second.answered = true;
      if (events_.peer_connected) events_.peer_connected(address);
    } else if (event->id == ZMQ_EVENT_DISCONNECTED && link.connected) {
      link.connected = false;
      if (events_.peer_lost) events_.peer_lost(address);
    } else if (event->id & zmq_socket::kHandshakeFailed) {
      link.refused = true;
      if (sockets_->refused.insert(address).second) {
        spdlog::warn("cannot talk to {}: {}", address, not_of_this_mesh(security_));
      }
    }
  }
}

void ZmqTransport::warn_expected_peers() {
  const auto now = std::chrono::steady_clock::now();
  if (expected_.empty() || now < sockets_->next_warning) return;
  sockets_->next_warning = now + kExpectedPeerWarning;
  for (auto& [address, expected] : expected_) {
    if (expected.answered) continue;
    bool refused = false, reached = false;
    for (Lane lane : {Lane::control, Lane::data}) {
      auto it = sockets_->links.find({address, lane});
      if (it == sockets_->links.end()) continue;
      refused |= it->second.refused;
      reached |= it->second.reached;
    }
    spdlog::warn("{} {}: {}; still trying", expected.flag, address,
                 refused   ? not_of_this_mesh(security_)
                 : reached ? "it accepts connections but completes no handshake"
                           : "nothing answers there (no node listening, or a firewall in the way)");
  }
}

}  // namespace troupe::net
