// Addresses as nodes name them (HOST:PORT; an IPv6 host in brackets, "[::1]:7000") and the one
// a node advertises: the address its peers dial, which a wildcard --listen (0.0.0.0, [::]) is not.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace troupe::net {

// "tcp://HOST:PORT" for ZeroMQ.
std::string endpoint(const std::string& address);
// The host and port of HOST:PORT (brackets kept); nullopt when it has no port.
struct HostPort {
  std::string host;
  std::string port;
};
std::optional<HostPort> split_address(const std::string& address);
// "[...]" hosts: the socket needs ZMQ_IPV6.
bool is_ipv6(const std::string& address);
// 0.0.0.0, *, [::]: listens on every interface, names none.
bool is_wildcard(const std::string& address);
bool is_loopback(const std::string& address);
// Where this machine reaches a node listening at `listen`: the loopback address for a wildcard.
std::string local_address(const std::string& listen);

// The address a node listening at `listen` tells its peers:
// - `advertise` when given;
// - `listen` when it names one host;
// - for a wildcard, the address of the interface that routes to `toward` (the first --join
//   peer; a UDP socket connected there says which, and sends nothing), else the machine's one
//   non-loopback address that is up.
// InputError naming --listen and telling to use --advertise when it cannot tell (no --join and
// none or several addresses to choose from).
std::string advertised_address(const std::string& listen, const std::string& advertise,
                               const std::optional<std::string>& toward);

// The machine's addresses that are up, not loopback and not IPv6 link-local (for the message
// above and the tests).
std::vector<std::string> interface_addresses(bool ipv4, bool ipv6);

}  // namespace troupe::net
