#include "troupe/net/lan_beacon.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <set>

#include "troupe/discovery/membership.hpp"
#include "troupe/model/error.hpp"

namespace troupe::net {

namespace {

constexpr const char* kMagic = "troupe-beacon 1";

std::string beacon(const std::string& address, const std::string& model) {
  return std::string(kMagic) + "\n" + address + "\n" + model + "\n";
}

// The address and model of a beacon; empty address for anything else.
std::pair<std::string, std::string> parse(const std::string& text) {
  const auto a = text.find('\n');
  const auto b = a == std::string::npos ? a : text.find('\n', a + 1);
  const auto c = b == std::string::npos ? b : text.find('\n', b + 1);
  if (c == std::string::npos || text.compare(0, a, kMagic) != 0) return {};
  return {text.substr(a + 1, b - a - 1), text.substr(b + 1, c - b - 1)};
}

}  // namespace

LanBeacon::LanBeacon(std::string address, std::string model, int port,
                     std::function<void(const std::string&)> found)
    : address_(std::move(address)), model_(std::move(model)), port_(port), found_(std::move(found)) {
  socket_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (socket_ < 0) throw RuntimeFailure(std::string("--discover: no UDP socket: ") + std::strerror(errno));
  const int on = 1;
  // Several nodes on one machine share the port; each gets every multicast datagram.
  setsockopt(socket_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  setsockopt(socket_, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_port = htons(static_cast<uint16_t>(port_));
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(socket_, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0) {
    const std::string why = std::strerror(errno);
    close(socket_);
    throw InputError("--discover: cannot listen on UDP port " + std::to_string(port_) + ": " + why);
  }
  ip_mreq group{};
  inet_pton(AF_INET, kBeaconGroup, &group.imr_multiaddr);
  group.imr_interface.s_addr = htonl(INADDR_ANY);
  if (setsockopt(socket_, IPPROTO_IP, IP_ADD_MEMBERSHIP, &group, sizeof group) != 0) {
    spdlog::warn("--discover: cannot join multicast group {} ({}); answers to others' beacons only",
                 kBeaconGroup, std::strerror(errno));
  }
  setsockopt(socket_, IPPROTO_IP, IP_MULTICAST_LOOP, &on, sizeof on);  // nodes on this machine too
  thread_ = std::thread([this] { loop(); });
}

LanBeacon::~LanBeacon() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (socket_ >= 0) close(socket_);
}

void LanBeacon::loop() {
  const std::string mine = beacon(address_, model_);
  sockaddr_in group{};
  group.sin_family = AF_INET;
  group.sin_port = htons(static_cast<uint16_t>(port_));
  inet_pton(AF_INET, kBeaconGroup, &group.sin_addr);
  std::set<std::string> heard;
  bool warned = false, loopback_tried = false;
  auto next = std::chrono::steady_clock::now();
  while (!stop_) {
    if (std::chrono::steady_clock::now() >= next) {
      next += std::chrono::seconds(1);
      if (sendto(socket_, mine.data(), mine.size(), 0, reinterpret_cast<sockaddr*>(&group), sizeof group) < 0) {
        if (!loopback_tried) {
          // No route for multicast (a machine without a default route): this machine's own
          // nodes can still meet over the loopback interface.
          loopback_tried = true;
          in_addr lo{};
          lo.s_addr = htonl(INADDR_LOOPBACK);
          setsockopt(socket_, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof lo);
        } else if (!warned) {
          warned = true;
          spdlog::warn("--discover: cannot send beacons to {}: {}", kBeaconGroup, std::strerror(errno));
        }
      }
    }
    pollfd p{socket_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buffer[1024];
    sockaddr_in from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = recvfrom(socket_, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n <= 0) continue;
    const auto [address, model] = parse(std::string(buffer, std::size_t(n)));
    if (address.empty() || address == address_ || model != model_ || !discovery::plausible_address(address)) {
      continue;  // not ours: another model, another program, or this node itself
    }
    if (heard.size() < 4096 && heard.insert(address).second) {
      spdlog::info("discovered {} on the local network", address);
      // Unicast answer: the sender hears of this node even if our multicast does not reach it.
      sendto(socket_, mine.data(), mine.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
      found_(address);
    }
  }
}

}  // namespace troupe::net
