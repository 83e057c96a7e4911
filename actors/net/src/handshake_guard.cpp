#include "handshake_guard.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include <vector>
#include <zmq_addon.hpp>

#include "troupe/net/addresses.hpp"
#include "zmq_socket.hpp"

namespace troupe::net {

namespace {

constexpr const char* kNotMember =
    "its ZeroMQ handshake failed: not a member of this mesh (another mesh secret, no CURVE, or "
    "--insecure on one side only)";

std::string failure_reason(const zmq_socket::Event& e) {
  if (e.id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && e.value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
    return "its ZeroMQ handshake failed: it speaks another security mechanism (CURVE on one side, "
           "none on the other: --insecure on one side only)";
  }
  if (e.id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && e.value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC) {
    return "its ZeroMQ handshake failed: it does not hold this mesh's key (another mesh secret)";
  }
  return kNotMember;
}

// The host of a connection's peer ("10.0.0.5:41234" -> "10.0.0.5"): what the refusal log counts by.
std::string host_of(const std::string& address) {
  const auto hp = split_address(address);
  return hp ? hp->host : address;
}

std::string peer_of(int fd) {
  sockaddr_storage a{};
  socklen_t length = sizeof a;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a), &length) != 0) return "an address already gone";
  char host[64] = {};
  uint16_t port = 0;
  if (a.ss_family == AF_INET) {
    const auto* a4 = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
    port = ntohs(a4->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&a);
  inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
  std::string text = "[";  // built in steps: GCC 12 warns (-Wrestrict) on "[" + std::string(...)
  text += host;
  text += "]:" + std::to_string(ntohs(a6->sin6_port));
  return text;
}

}  // namespace

HandshakeGuard::HandshakeGuard(zmq::context_t& context, zmq::socket_t& router, const MeshSecurity& security)
    : client_key_(security.client().public_key), secure_(!security.is_insecure()) {
  if (secure_) {
    zap_ = zmq::socket_t(context, zmq::socket_type::rep);
    zap_.set(zmq::sockopt::linger, 0);
    zap_.bind("inproc://zeromq.zap.01");
  }
  monitor_ = zmq_socket::monitor(context, router,
                                 ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | zmq_socket::kHandshakeFailed);
  thread_ = std::thread([this] { loop(); });
}

HandshakeGuard::~HandshakeGuard() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void HandshakeGuard::loop() {
  while (!stop_) {
    zmq::pollitem_t items[] = {{monitor_.handle(), 0, ZMQ_POLLIN, 0}, {zap_.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, secure_ ? 2 : 1, std::chrono::milliseconds(200));
      if (items[0].revents & ZMQ_POLLIN) read_monitor();
      if (secure_ && (items[1].revents & ZMQ_POLLIN)) answer_zap();
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      if (e.num() != EINTR) spdlog::warn("handshake guard: {}", e.what());
    }
    if (auto line = log_.summary(RefusalLog::Clock::now())) spdlog::warn("{}", *line);
  }
}

void HandshakeGuard::read_monitor() {
  while (auto event = zmq_socket::read_event(monitor_)) {
    const int fd = static_cast<int>(event->value);
    if (event->id == ZMQ_EVENT_ACCEPTED) {
      if (accepted_.size() >= 65536) accepted_.clear();  // descriptors whose DISCONNECTED was lost
      accepted_[fd] = peer_of(fd);
    } else if (event->id == ZMQ_EVENT_DISCONNECTED) {
      auto it = accepted_.find(fd);
      if (failed_) refuse(it != accepted_.end() ? it->second : "an unknown address", *failed_);
      failed_.reset();
      if (it != accepted_.end()) accepted_.erase(it);
    } else if (event->id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
      failed_.reset();  // refused by answer_zap, which logged it with its address
    } else {
      failed_ = failure_reason(*event);  // its DISCONNECTED comes next, with the descriptor
    }
  }
}

void HandshakeGuard::answer_zap() {
  // RFC 27: version, request id, domain, address, identity, mechanism, credentials...
  std::vector<zmq::message_t> request;
  if (!zmq::recv_multipart(zap_, std::back_inserter(request), zmq::recv_flags::dontwait)) return;
  const bool well_formed = request.size() >= 6 && request[0].to_string_view() == "1.0";
  const bool admitted = well_formed && request.size() == 7 && request[5].to_string_view() == "CURVE" &&
                        request[6].size() == client_key_.size() &&
                        sodium_memcmp(request[6].data(), client_key_.data(), client_key_.size()) == 0;
  std::vector<zmq::message_t> reply;
  reply.emplace_back(std::string_view("1.0"));
  reply.emplace_back(request.size() > 1 ? request[1].to_string_view() : std::string_view());
  reply.emplace_back(std::string_view(admitted ? "200" : "400"));
  reply.emplace_back(std::string_view(admitted ? "OK" : "not a key of this mesh"));
  reply.emplace_back();  // user id
  reply.emplace_back();  // metadata
  zmq::send_multipart(zap_, reply);
  if (!admitted) {
    refuse(request.size() > 3 ? request[3].to_string() : "an unknown address",
           "it knows the mesh's server key but presents a client key of no member");
  }
}

void HandshakeGuard::refuse(const std::string& address, const std::string& why) {
  refused_.fetch_add(1, std::memory_order_relaxed);
  if (auto line = log_.refused(host_of(address), why, RefusalLog::Clock::now())) spdlog::warn("{}", *line);
}

}  // namespace troupe::net
