// cpp-httplib's server with the limits a port open to a network needs. Debian 12's
// libcpp-httplib 0.11.4 is compiled with a listen backlog of 5, binds with SO_REUSEPORT (a second
// process on the same port succeeds and the kernel splits clients between the two), times out
// each recv() alone (a client that sends one header line a second holds its connection for
// ever) and runs connections on a fixed pool whose queue grows without bound (a few such
// clients starve every other request). This server, on the same routes and handlers:
// - binds the port for this process alone and listens with a backlog of SOMAXCONN;
// - runs each connection on a thread of its own, up to ConnectionLimits::max_connections;
//   a connection beyond that gets a 503 at once and is closed;
// - gives a request header_time from its first byte to the end of its headers and body_time
//   more for its body (408 when either runs out, or when the client falls silent for
//   idle_time within a request), and closes a keep-alive connection idle for idle_time.
// Answers once started have no deadline (a stream of server-sent events may run for minutes);
// a client that takes nothing for write_time is taken to be gone.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace troupe::cli {

struct ConnectionLimits {
  std::size_t max_connections = 256;
  std::chrono::milliseconds header_time{10'000};
  std::chrono::milliseconds body_time{30'000};
  std::chrono::milliseconds idle_time{5'000};
  std::chrono::milliseconds write_time{10'000};
  std::size_t requests_per_connection = 100;
};

class GuardedHttpServer : public httplib::Server {
 public:
  explicit GuardedHttpServer(ConnectionLimits limits = {});
  ~GuardedHttpServer() override;

  // Binds HOST:PORT (a host name, an IPv4 address or an IPv6 one without brackets) and listens.
  // RuntimeFailure "<flag> <address>: cannot listen there: <why>" when it cannot.
  void bind_exclusive(const std::string& host, int port, const std::string& flag, const std::string& address);
  // Accepts connections until stop_accepting(); returns once every connection has ended.
  void serve();
  // Closes the listening socket (also before serve() has begun: httplib's stop() would then do
  // nothing). Connections waiting on their clients end; answers being written fail.
  void stop_accepting();

  // For a handler: the connection closes once this request's response is written (a request
  // refused before its body was read leaves that body unread on the connection).
  static void close_after_response();
  // For a handler: whether this request's client has closed its connection (a client that
  // half-closes after its request, which HTTP clients do not, reads as gone too).
  static bool client_gone();

  std::size_t open_connections() const;
  uint64_t refused_connections() const { return refused_.load(); }

 private:
  class ConnectionThreads;
  bool process_and_close_socket(socket_t sock) override;
  void refuse(socket_t sock);

  const ConnectionLimits limits_;
  std::thread::id accept_thread_;
  mutable std::mutex mutex_;
  std::condition_variable all_closed_;
  std::size_t open_ = 0;
  std::atomic<uint64_t> refused_{0};
};

}  // namespace troupe::cli
