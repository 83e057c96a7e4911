#include "troupe/net/addresses.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "troupe/model/error.hpp"

namespace troupe::net {

namespace {

std::string unbracketed(const std::string& host) {
  return host.size() >= 2 && host.front() == '[' && host.back() == ']' ? host.substr(1, host.size() - 2) : host;
}

// The numeric form of an IPv4 or IPv6 socket address, IPv6 in brackets.
std::string numeric_host(const sockaddr* a) {
  char text[INET6_ADDRSTRLEN] = {};
  if (a->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a)->sin_addr, text, sizeof text);
    return text;
  }
  inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr, text, sizeof text);
  std::string bracketed = "[";  // appended, not "[" + ...: GCC 12 warns a false -Wrestrict on that
  bracketed += text;
  bracketed += ']';
  return bracketed;
}

// The host of this machine's interface that routes toward `address`, if the system knows one.
std::optional<std::string> route_toward(const std::string& address, bool ipv4_only) {
  const auto target = split_address(address);
  if (!target) return std::nullopt;
  addrinfo hints{};
  hints.ai_family = ipv4_only ? AF_INET : AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(unbracketed(target->host).c_str(), target->port.c_str(), &hints, &found) != 0) return std::nullopt;
  std::optional<std::string> host;
  for (addrinfo* ai = found; ai && !host; ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    // connect() on a UDP socket only picks the route and the source address: nothing is sent.
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0) {
      host = numeric_host(reinterpret_cast<const sockaddr*>(&local));
    }
    close(fd);
  }
  freeaddrinfo(found);
  return host;
}

}  // namespace

std::optional<HostPort> split_address(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) return std::nullopt;
  const std::string host = address.substr(0, colon);
  // A bare IPv6 address ("::1:7000") is ambiguous: IPv6 hosts come in brackets.
  if (host.find(':') != std::string::npos && host.front() != '[') return std::nullopt;
  return HostPort{host, address.substr(colon + 1)};
}

std::string endpoint(const std::string& address) { return "tcp://" + address; }

bool is_ipv6(const std::string& address) { return !address.empty() && address.front() == '['; }

bool is_wildcard(const std::string& address) {
  const auto hp = split_address(address);
  if (!hp) return false;
  return hp->host == "0.0.0.0" || hp->host == "*" || hp->host == "[::]" || hp->host == "[0:0:0:0:0:0:0:0]";
}

bool is_loopback(const std::string& address) {
  const auto hp = split_address(address);
  if (!hp) return false;
  return hp->host.rfind("127.", 0) == 0 || hp->host == "localhost" || hp->host == "[::1]";
}

std::string local_address(const std::string& listen) {
  if (!is_wildcard(listen)) return listen;
  const auto hp = split_address(listen);
  return (is_ipv6(listen) ? "[::1]:" : "127.0.0.1:") + hp->port;
}

std::vector<std::string> interface_addresses(bool ipv4, bool ipv6) {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) || !(i->ifa_flags & IFF_RUNNING) || (i->ifa_flags & IFF_LOOPBACK)) {
      continue;
    }
    const int family = i->ifa_addr->sa_family;
    if (family == AF_INET && ipv4) out.push_back(numeric_host(i->ifa_addr));
    if (family == AF_INET6 && ipv6) {
      const auto* a6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      if (!IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr)) out.push_back(numeric_host(i->ifa_addr));
    }
  }
  freeifaddrs(list);
  return out;
}

std::string advertised_address(const std::string& listen, const std::string& advertise,
                               const std::optional<std::string>& toward) {
  if (!advertise.empty()) return advertise;
  if (!is_wildcard(listen)) return listen;
  const std::string port = split_address(listen)->port;
  const bool ipv4_only = !is_ipv6(listen);
  if (toward) {
    if (auto host = route_toward(*toward, ipv4_only)) return *host + ":" + port;
  }
  std::vector<std::string> hosts = interface_addresses(true, false);
  if (hosts.empty() && !ipv4_only) hosts = interface_addresses(false, true);
  if (hosts.size() == 1) return hosts.front() + ":" + port;
  std::string listed;
  for (const auto& h : hosts) listed += (listed.empty() ? "" : ", ") + h;
  throw InputError("--listen " + listen + ": cannot tell which address peers should dial (" +
                   (hosts.empty() ? std::string("no network address is up") : "this machine has " + listed) +
                   "): give --advertise HOST:PORT");
}

}  // namespace troupe::net
