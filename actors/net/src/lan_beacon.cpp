#include "troupe/net/lan_beacon.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstring>
#include <vector>

#include "troupe/discovery/membership.hpp"
#include "troupe/model/error.hpp"

namespace troupe::net {

namespace {

// Lines: the magic, the address, the model, the time sent (ms), then the MAC of all before it.
constexpr std::string_view kMagic = "troupe-beacon 2";

std::string mac_hex(std::string_view authenticated, const Key32& key) {
  uint8_t mac[crypto_auth_BYTES];
  crypto_auth(mac, reinterpret_cast<const uint8_t*>(authenticated.data()), authenticated.size(), key.data());
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (uint8_t b : mac) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

// The lines of `text`, each ended by '\n'; empty when it has not exactly `count` of them.
std::vector<std::string_view> lines(std::string_view text, std::size_t count) {
  std::vector<std::string_view> out;
  while (!text.empty() && out.size() < count + 1) {
    const auto end = text.find('\n');
    if (end == std::string_view::npos) return {};
    out.push_back(text.substr(0, end));
    text.remove_prefix(end + 1);
  }
  return out.size() == count && text.empty() ? out : std::vector<std::string_view>{};
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string encode_beacon(const Beacon& beacon, const Key32& key) {
  const std::string authenticated = std::string(kMagic) + "\n" + beacon.address + "\n" + beacon.model + "\n" +
                                    std::to_string(beacon.sent_ms) + "\n";
  return authenticated + mac_hex(authenticated, key) + "\n";
}

BeaconFilter::Verdict BeaconFilter::check(std::string_view datagram, int64_t now, Beacon& beacon) {
  const auto l = lines(datagram, 5);
  if (l.empty() || l[0] != kMagic || l[3].empty() || l[3].size() > 18 ||
      l[3].find_first_not_of("0123456789") != std::string_view::npos) {
    return Verdict::not_a_beacon;
  }
  const std::string_view authenticated = datagram.substr(0, datagram.size() - l[4].size() - 1);
  const std::string expected = mac_hex(authenticated, key_);
  if (l[4].size() != expected.size() || sodium_memcmp(l[4].data(), expected.data(), expected.size()) != 0) {
    return Verdict::other_mesh;
  }
  const int64_t sent = std::stoll(std::string(l[3]));
  const int64_t max_age = std::chrono::milliseconds(kBeaconMaxAge).count();
  if (sent < now - max_age || sent > now + max_age) return Verdict::stale;
  const std::string address(l[1]);
  auto it = newest_.find(address);
  if (it != newest_.end() && sent <= it->second) return Verdict::replayed;
  if (newest_.size() >= 4096) newest_.clear();
  newest_[address] = sent;
  beacon = {address, std::string(l[2]), sent};
  return Verdict::accepted;
}

LanBeacon::LanBeacon(std::string address, std::string model, const MeshSecurity& security, int port,
                     std::function<void(const std::string&)> found)
    : address_(std::move(address)),
      model_(std::move(model)),
      key_(security.beacon_key()),
      filter_(security.beacon_key()),
      port_(port),
      found_(std::move(found)) {
  if (sodium_init() < 0) throw RuntimeFailure("--discover: libsodium cannot initialise");
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

void LanBeacon::send_own(const void* to, unsigned to_length) {
  const std::string mine = encode_beacon({address_, model_, now_ms()}, key_);
  if (sendto(socket_, mine.data(), mine.size(), 0, static_cast<const sockaddr*>(to), to_length) >= 0) return;
  if (!loopback_tried_) {
    // No route for multicast (a machine without a default route): this machine's own nodes can
    // still meet over the loopback interface.
    loopback_tried_ = true;
    in_addr lo{};
    lo.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(socket_, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof lo);
  } else if (!warned_) {
    warned_ = true;
    spdlog::warn("--discover: cannot send beacons to {}: {}", kBeaconGroup, std::strerror(errno));
  }
}

void LanBeacon::loop() {
  sockaddr_in group{};
  group.sin_family = AF_INET;
  group.sin_port = htons(static_cast<uint16_t>(port_));
  inet_pton(AF_INET, kBeaconGroup, &group.sin_addr);
  auto next = std::chrono::steady_clock::now();
  while (!stop_) {
    if (std::chrono::steady_clock::now() >= next) {
      next += std::chrono::seconds(1);
      send_own(&group, sizeof group);
    }
    pollfd p{socket_, POLLIN, 0};
    if (poll(&p, 1, 100) > 0) receive();
  }
}

void LanBeacon::receive() {
  char buffer[2048];
  sockaddr_in from{};
  socklen_t from_len = sizeof from;
  const ssize_t n = recvfrom(socket_, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
  if (n <= 0) return;
  Beacon b;
  const auto verdict = filter_.check(std::string_view(buffer, std::size_t(n)), now_ms(), b);
  if (verdict == BeaconFilter::Verdict::other_mesh || verdict == BeaconFilter::Verdict::stale) {
    char host[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &from.sin_addr, host, sizeof host);
    if (ignored_.size() < 256 && ignored_.insert(host).second) {
      spdlog::info("--discover: ignoring beacons from {}: {}", host,
                   verdict == BeaconFilter::Verdict::stale
                       ? "stale (sent over 30 s from now by this clock: clocks apart, or a replay)"
                       : "not of this mesh (another mesh secret, --insecure on one side, or forged)");
    }
    return;
  }
  if (verdict != BeaconFilter::Verdict::accepted || b.address == address_ || b.model != model_ ||
      !discovery::plausible_address(b.address)) {
    return;  // not ours: a replay, another model, another program, or this node itself
  }
  if (heard_.size() < 4096 && heard_.insert(b.address).second) {
    spdlog::info("discovered {} on the local network", b.address);
    // Unicast answer: the sender hears of this node even if our multicast does not reach it.
    send_own(&from, from_len);
    found_(b.address);
  }
}

}  // namespace troupe::net
