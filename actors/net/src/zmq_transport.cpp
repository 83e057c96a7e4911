#include "troupe/net/zmq_transport.hpp"

#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <vector>

#include "handshake_guard.hpp"
#include "troupe/model/error.hpp"
#include "troupe/net/addresses.hpp"
#include "troupe/protocol/drop_log.hpp"
#include "zmq_socket.hpp"

#include <zmq_addon.hpp>

namespace troupe::net {

namespace {

constexpr auto kExpectedPeerWarning = std::chrono::seconds(5);
constexpr std::string_view kPeerIdPrefix = "troupe/peer/";
constexpr std::size_t kMaxRoutingId = 255;  // ZeroMQ's limit
// Sockets per peer: a DEALER per lane, each with its monitor (the PAIR we read, and ZeroMQ's own
// end of it).
constexpr std::size_t kSocketsPerPeer = 6;
constexpr std::size_t kClosingHeadroom = 4;

// Raises the soft limit on open files to `wanted` (at most the hard limit): every ZeroMQ socket
// holds a descriptor for its mailbox and every connection one more, and Debian's default soft
// limit of 1,024 is below what max_peers peers need.
void raise_open_file_limit(rlim_t wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= wanted) return;
  const rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
  if (limit.rlim_cur > before && setrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < wanted) {
    spdlog::warn("open files limited to {} (the hard limit); {} peers may need {}", limit.rlim_cur,
                 ZmqTransport::kMaxLinkedPeers, wanted);
  }
}

std::string not_of_this_mesh(const MeshSecurity& security) {
  return security.is_insecure()
             ? "the handshake fails: that node is not --insecure (this one is)"
             : "the handshake fails: that node is not of this mesh (another mesh secret, or it runs --insecure)";
}

}  // namespace

std::string peer_routing_id(const std::string& address, Transport::Lane lane) {
  return std::string(kPeerIdPrefix) + (lane == Transport::Lane::control ? "c/" : "d/") + address;
}

Origin origin_of(const std::string& routing_id) {
  const std::size_t n = kPeerIdPrefix.size();
  if (routing_id.size() > n + 2 && routing_id.compare(0, n, kPeerIdPrefix) == 0 &&
      (routing_id[n] == 'c' || routing_id[n] == 'd') && routing_id[n + 1] == '/') {
    return Origin::peer(routing_id.substr(n + 2));
  }
  return Origin::client(routing_id);
}

struct ZmqTransport::Link {
  zmq::socket_t dealer;
  zmq::socket_t monitor;
  bool connected = false;  // the handshake succeeded and the connection has not broken since
  bool reached = false;    // a TCP connection came up at some point
  bool refused = false;    // the last handshake failed
};

struct ZmqTransport::Sockets {
  explicit Sockets(std::size_t max_peers) {
    // Before the first socket: ZeroMQ reads the limit when it makes a socket. A closed socket
    // counts until ZeroMQ's reaper thread has ended it, some time later: when members come and
    // go quickly (thousands of invented ones, each closed to make room for the next), the
    // sockets being closed can outnumber the open ones several times over.
    const int max_sockets = int(std::max<std::size_t>(1023, kClosingHeadroom * kSocketsPerPeer * max_peers + 256));
    context.set(zmq::ctxopt::max_sockets, max_sockets);
    raise_open_file_limit(rlim_t(2 * max_sockets + 1024));  // and the connections, the model's files
    router = zmq::socket_t(context, zmq::socket_type::router);
  }
  zmq::context_t context{1};
  zmq::socket_t router;
  std::map<LinkKey, Link> links;  // by peer address and lane
  std::map<std::string, std::chrono::steady_clock::time_point> last_sent;  // by peer with links
  std::set<std::string> refused;  // peers whose handshake fails, logged once until it succeeds
  std::chrono::steady_clock::time_point next_warning = std::chrono::steady_clock::now() + kExpectedPeerWarning;
  std::chrono::steady_clock::time_point next_sweep{};
  DropLog dropped;  // messages that are not troupe frames
  // Declared last, so destroyed first: its sockets close before the context ends.
  std::unique_ptr<HandshakeGuard> guard;
};

ZmqTransport::ZmqTransport(Options options)
    : options_(std::move(options)), sockets_(std::make_unique<Sockets>(options_.max_peers)) {
  if (options_.advertise.empty()) options_.advertise = options_.listen;
  if (peer_routing_id(options_.advertise, Lane::control).size() > kMaxRoutingId) {
    throw InputError("--advertise " + options_.advertise + ": too long to name this node's connections (at most " +
                     std::to_string(kMaxRoutingId - peer_routing_id("", Lane::control).size()) + " bytes)");
  }
  const std::string& listen = options_.listen;
  zmq::socket_t& router = sockets_->router;
  zmq_socket::configure(router, listen);
  zmq_socket::secure_server(router, options_.security);
  // A reply to a client that has gone fails loudly instead of vanishing.
  router.set(zmq::sockopt::router_mandatory, 1);
  // A peer that reconnects with its routing id (a restart at the same address) takes it over.
  router.set(zmq::sockopt::router_handover, 1);
  sockets_->guard = std::make_unique<HandshakeGuard>(sockets_->context, router, options_.security);
  try {
    router.bind(endpoint(listen));
  } catch (const zmq::error_t& e) {
    if (e.num() == EADDRINUSE || e.num() == EADDRNOTAVAIL || e.num() == EACCES) {
      throw RuntimeFailure("--listen " + listen + ": cannot listen there: " + e.what());
    }
    throw InputError("--listen " + listen + ": not an address to listen on (" + e.what() + ")");
  }
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw RuntimeFailure("eventfd failed");
}

// The DEALER to `address` in `lane`, connecting it on first use; makes room first when
// max_peers peers have DEALERs (the one sent to least recently loses them).
ZmqTransport::Link& ZmqTransport::link(const std::string& address, Lane lane) {
  Sockets& x = *sockets_;
  auto it = x.links.find({address, lane});
  if (it != x.links.end()) return it->second;
  if (!x.last_sent.count(address) && x.last_sent.size() >= options_.max_peers) {
    const auto oldest = std::min_element(x.last_sent.begin(), x.last_sent.end(),
                                         [](const auto& a, const auto& b) { return a.second < b.second; });
    close_links(oldest->first);
  }
  Link l;
  l.dealer = zmq::socket_t(x.context, zmq::socket_type::dealer);
  zmq_socket::configure(l.dealer, address);
  zmq_socket::secure_client(l.dealer, options_.security);
  l.dealer.set(zmq::sockopt::routing_id, peer_routing_id(options_.advertise, lane));
  l.monitor = zmq_socket::monitor(x.context, l.dealer,
                                  ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                      zmq_socket::kHandshakeFailed);
  l.dealer.connect(endpoint(address));
  x.last_sent.emplace(address, std::chrono::steady_clock::now());
  linked_peers_.store(x.last_sent.size(), std::memory_order_relaxed);
  return x.links.emplace(LinkKey{address, lane}, std::move(l)).first->second;
}

// Closes both lanes to `address` (frames still queued there are dropped). Nothing is reported:
// the peer is not lost, only quiet; a later send connects again.
void ZmqTransport::close_links(const std::string& address) {
  Sockets& x = *sockets_;
  for (Lane lane : {Lane::control, Lane::data}) x.links.erase({address, lane});
  x.last_sent.erase(address);
  linked_peers_.store(x.last_sent.size(), std::memory_order_relaxed);
}

// Once a second: closes the DEALERs of peers nothing was sent to for link_idle.
void ZmqTransport::close_idle_links() {
  Sockets& x = *sockets_;
  const auto now = std::chrono::steady_clock::now();
  if (now < x.next_sweep) return;
  x.next_sweep = now + std::chrono::seconds(1);
  std::vector<std::string> idle;
  for (const auto& [address, sent] : x.last_sent) {
    if (now - sent >= options_.link_idle) idle.push_back(address);
  }
  for (const auto& address : idle) close_links(address);
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
    if (!sent) spdlog::warn("reply to client {} dropped: its queue is full", Origin::client(route).describe());
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) {
      if (events_.route_gone) events_.route_gone(route);
    } else {
      spdlog::warn("reply to client {} failed: {}", Origin::client(route).describe(), e.what());
    }
  }
}

void ZmqTransport::send_now(const std::string& address, const Frame& frame, Lane lane) {
  frames_sent_.fetch_add(1, std::memory_order_relaxed);
  bytes_sent_.fetch_add(frame.size(), std::memory_order_relaxed);
  zmq::message_t body(frame.data(), frame.size());
  try {
    Link& to = link(address, lane);  // connects on first use
    sockets_->last_sent[address] = std::chrono::steady_clock::now();
    if (!to.dealer.send(body, zmq::send_flags::dontwait)) {
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
  while (!stopping_) {
    poll_once();
    if (stopping_) break;
    close_idle_links();
    warn_expected_peers();
  }
}

// Waits up to a second for the ROUTER, the wake-up, and every DEALER and its monitor, and handles
// what came.
void ZmqTransport::poll_once() {
  std::vector<zmq::pollitem_t> items;
  std::vector<LinkKey> item_links;  // the link of each monitor and dealer item
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
    return;
  }
  if (stopping_) return;
  if (items[1].revents & ZMQ_POLLIN) {
    uint64_t count;
    [[maybe_unused]] ssize_t n = read(wake_fd_, &count, sizeof count);
    run_queue();
  }
  if (items[0].revents & ZMQ_POLLIN) receive_frames();
  for (std::size_t i = 0; i < item_links.size(); i++) {
    // The queue's sends may have closed links (making room for others) since the poll.
    auto it = sockets_->links.find(item_links[i]);
    if (it == sockets_->links.end()) continue;
    Link& link = it->second;
    if (items[2 + 2 * i].revents & ZMQ_POLLIN) read_link_events(item_links[i], link);
    if (items[3 + 2 * i].revents & ZMQ_POLLIN) {
      // Peers answer through their own connections; anything arriving here is dropped.
      zmq::message_t junk;
      while (link.dealer.recv(junk, zmq::recv_flags::dontwait)) {
      }
      const std::string& peer = item_links[i].first;
      if (auto line = sockets_->dropped.dropped(peer, "it sent frames back on our connection to it",
                                                std::chrono::steady_clock::now())) {
        spdlog::warn("{}", *line);
      }
    }
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
    Origin origin = origin_of(parts.empty() ? std::string() : parts[0].to_string());
    if (parts.size() != 2) {
      const std::string why = "a message of " + std::to_string(parts.size() - 1) + " parts (troupe frames are single-part)";
      if (auto line = sockets_->dropped.dropped(origin.describe(), why, std::chrono::steady_clock::now())) {
        spdlog::warn("{}", *line);
      }
      continue;
    }
    frames_received_.fetch_add(1, std::memory_order_relaxed);
    bytes_received_.fetch_add(parts[1].size(), std::memory_order_relaxed);
    const auto* data = static_cast<const uint8_t*>(parts[1].data());
    if (events_.frame) events_.frame(std::move(origin), Frame(data, data + parts[1].size()));
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
        spdlog::warn("cannot talk to {}: {}", address, not_of_this_mesh(options_.security));
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
                 refused   ? not_of_this_mesh(options_.security)
                 : reached ? "it accepts connections but completes no handshake"
                           : "nothing answers there (no node listening, or a firewall in the way)");
  }
}

}  // namespace troupe::net
