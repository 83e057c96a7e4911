#include "guarded_http_server.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "troupe/model/error.hpp"

namespace troupe::cli {

namespace {

using Clock = std::chrono::steady_clock;

// How often a connection waiting on its client looks whether the server is stopping.
constexpr auto kStopCheck = std::chrono::milliseconds(200);

std::string error_response(int status, const char* reason, const std::string& message, const char* code) {
  const std::string body = R"({"error":{"message":")" + message + R"(","type":")" +
                           (status >= 500 ? "server_error" : "invalid_request_error") +
                           R"(","param":null,"code":")" + code + "\"}}";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         (status == 503 ? "\r\nRetry-After: 1" : "") + "\r\nConnection: close\r\n\r\n" + body;
}

std::string seconds(std::chrono::milliseconds t) { return std::to_string(t.count() / 1000); }

// One client's connection as cpp-httplib's request parser and response writer see it: reads
// and writes that end at the connection's deadlines (see guarded_http_server.hpp).
class Connection final : public httplib::Stream {
 public:
  Connection(socket_t sock, const ConnectionLimits& limits, const std::atomic<socket_t>& listener)
      : sock_(sock), limits_(limits), listener_(listener) {}

  // Waits (idle_time at most) for the first byte of the next request and starts its clock;
  // false when none comes, the client has gone, or this connection is to close.
  bool next_request() {
    if (closed_ || close_after_response_) return false;
    if (begin_ == end_ && wait(POLLIN, Clock::now() + limits_.idle_time) != Wait::ready) return false;
    deadline_ = Clock::now() + limits_.header_time;
    headers_read_ = false;
    last_four_ = 0;
    return true;
  }
  void close_after_response() { close_after_response_ = true; }

  bool is_readable() const override { return begin_ != end_ || wait(POLLIN, Clock::now()) == Wait::ready; }
  bool is_writable() const override {
    return !closed_ && wait(POLLOUT, Clock::now() + limits_.write_time) == Wait::ready;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (closed_) return -1;
    if (begin_ == end_ && !fill()) return -1;
    const std::size_t n = std::min(size, end_ - begin_);
    std::memcpy(ptr, buffer_ + begin_, n);
    begin_ += n;
    if (!headers_read_) watch_for_end_of_headers(ptr, n);
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    std::size_t sent = 0;
    while (!closed_ && sent < size) {
      if (wait(POLLOUT, Clock::now() + limits_.write_time) != Wait::ready) break;
      const ssize_t n = ::send(sock_, ptr + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
    if (sent == size) return static_cast<ssize_t>(size);
    closed_ = true;
    return -1;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(getpeername, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(getsockname, ip, port); }
  socket_t socket() const override { return sock_; }

  // The client closed the connection (or reset it) while its answer is being made: a peek that
  // reads the end of the stream. Bytes it sent since (a pipelined request) do not count.
  bool peer_closed() const {
    char c;
    const ssize_t n = ::recv(sock_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  }

 private:
  enum class Wait { ready, timeout, gone };

  // Waits for `events` until `until`, looking now and then whether the server is stopping.
  Wait wait(short events, Clock::time_point until) const {
    while (true) {
      if (listener_ == INVALID_SOCKET) return Wait::gone;
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
      pollfd p{sock_, events, 0};
      const int r =
          ::poll(&p, 1, static_cast<int>(std::clamp(left, std::chrono::milliseconds(0), kStopCheck).count()));
      if (r < 0 && errno != EINTR) return Wait::gone;
      if (r > 0) {
        if ((p.revents & (POLLERR | POLLNVAL)) || ((events & POLLOUT) && (p.revents & POLLHUP)))
          return Wait::gone;
        return Wait::ready;  // POLLHUP while reading: recv() says 0
      }
      if (Clock::now() >= until) return Wait::timeout;
    }
  }

  // Reads what the client has sent, within this request's deadline and its idle time.
  bool fill() {
    const auto until = std::min(deadline_, Clock::now() + limits_.idle_time);
    const Wait w = wait(POLLIN, until);
    if (w == Wait::timeout) {
      const bool late = until == deadline_;
      const std::string why =
          !late           ? "the client sent nothing for " + seconds(limits_.idle_time) + " s"
          : headers_read_ ? "the body did not arrive within " + seconds(limits_.body_time) + " s"
                          : "the headers did not arrive within " + seconds(limits_.header_time) + " s";
      const std::string response =
          error_response(408, "Request Timeout", "request timed out: " + why, "request_timeout");
      ::send(sock_, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    ssize_t n = -1;
    if (w == Wait::ready) {
      do n = ::recv(sock_, buffer_, sizeof buffer_, MSG_DONTWAIT);
      while (n < 0 && errno == EINTR);
    }
    if (n <= 0) {
      closed_ = true;  // no answer can follow a request that did not arrive
      return false;
    }
    begin_ = 0;
    end_ = static_cast<std::size_t>(n);
    return true;
  }

  // The headers end at the first empty line; the body's deadline starts there.
  void watch_for_end_of_headers(const char* bytes, std::size_t n) {
    for (std::size_t i = 0; i < n && !headers_read_; i++) {
      last_four_ = (last_four_ << 8) | static_cast<unsigned char>(bytes[i]);
      if (last_four_ == 0x0D0A0D0A) {
        headers_read_ = true;
        deadline_ = Clock::now() + limits_.body_time;
      }
    }
  }

  void address(int (*query)(int, sockaddr*, socklen_t*), std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t length = sizeof a;
    if (query(sock_, reinterpret_cast<sockaddr*>(&a), &length) != 0) return;
    char text[INET6_ADDRSTRLEN] = "";
    if (a.ss_family == AF_INET) {
      const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
      inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
      port = ntohs(v4.sin_port);
    } else if (a.ss_family == AF_INET6) {
      const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
      inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
      port = ntohs(v6.sin6_port);
    }
    ip = text;
  }

  const socket_t sock_;
  const ConnectionLimits& limits_;
  const std::atomic<socket_t>& listener_;  // INVALID_SOCKET once the server stops
  char buffer_[4096];
  std::size_t begin_ = 0, end_ = 0;
  Clock::time_point deadline_ = Clock::now();
  bool headers_read_ = false;
  uint32_t last_four_ = 0;
  bool closed_ = false;
  bool close_after_response_ = false;
};

// The connection this thread serves, for close_after_response().
thread_local Connection* current_connection = nullptr;

}  // namespace

// cpp-httplib hands each accepted connection to a task queue. This one starts a thread per
// connection while fewer than max_connections are open; beyond that it runs the task on the
// accepting thread itself, where process_and_close_socket() answers 503 and closes at once.
class GuardedHttpServer::ConnectionThreads final : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(GuardedHttpServer& server) : server_(server) {}

  void enqueue(std::function<void()> task) override {
    bool admitted = false;
    {
      std::lock_guard lock(server_.mutex_);
      admitted = server_.open_ < server_.limits_.max_connections;
      if (admitted) server_.open_++;
    }
    if (!admitted) return task();
    try {
      std::thread([&server = server_, task] {
        task();
        std::lock_guard lock(server.mutex_);  // the last the thread touches: the server outlives it
        server.open_--;
        server.all_closed_.notify_all();
      }).detach();
    } catch (const std::system_error&) {  // no thread to be had: refused as over the limit
      {
        std::lock_guard lock(server_.mutex_);
        server_.open_--;
      }
      task();
    }
  }

  void shutdown() override {
    std::unique_lock lock(server_.mutex_);
    server_.all_closed_.wait(lock, [&] { return server_.open_ == 0; });
  }

 private:
  GuardedHttpServer& server_;
};

GuardedHttpServer::GuardedHttpServer(ConnectionLimits limits) : limits_(limits) {
  new_task_queue = [this] { return new ConnectionThreads(*this); };
  // What the Keep-Alive header of each response announces.
  set_keep_alive_max_count(limits_.requests_per_connection);
  set_keep_alive_timeout(std::chrono::duration_cast<std::chrono::seconds>(limits_.idle_time).count());
}

GuardedHttpServer::~GuardedHttpServer() { stop_accepting(); }

void GuardedHttpServer::bind_exclusive(const std::string& host, int port, const std::string& flag,
                                       const std::string& address) {
  const auto fail = [&](const std::string& why) {
    throw RuntimeFailure(flag + " " + address + ": cannot listen there: " + why);
  };
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int e = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); e != 0) {
    fail(gai_strerror(e));
  }
  std::string why = "no address";
  for (const addrinfo* a = found; a; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    // SO_REUSEADDR lets a restarted node bind while its old connections wait out TIME_WAIT; it
    // never lets two sockets listen on one port (SO_REUSEPORT would, which is left off).
    const int yes = 1, no = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (a->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof no);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) {
      freeaddrinfo(found);
      svr_sock_ = fd;
      return;
    }
    why = std::strerror(errno);
    ::close(fd);
  }
  freeaddrinfo(found);
  fail(why);
}

void GuardedHttpServer::serve() {
  accept_thread_ = std::this_thread::get_id();
  listen_after_bind();
}

void GuardedHttpServer::stop_accepting() {
  const socket_t fd = svr_sock_.exchange(INVALID_SOCKET);
  if (fd == INVALID_SOCKET) return;
  ::shutdown(fd, SHUT_RDWR);  // wakes the accept() waiting on it
  ::close(fd);
}

void GuardedHttpServer::close_after_response() {
  if (current_connection) current_connection->close_after_response();
}

bool GuardedHttpServer::client_gone() { return current_connection && current_connection->peer_closed(); }

std::size_t GuardedHttpServer::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_;
}

bool GuardedHttpServer::process_and_close_socket(socket_t sock) {
  if (std::this_thread::get_id() == accept_thread_) {
    refuse(sock);
    return false;
  }
  Connection connection(sock, limits_, svr_sock_);
  current_connection = &connection;
  bool ok = true;
  for (std::size_t n = 1; ok && n <= limits_.requests_per_connection && connection.next_request(); n++) {
    bool client_closes = false;
    ok = process_request(connection, n == limits_.requests_per_connection, client_closes, nullptr) &&
         !client_closes;
  }
  current_connection = nullptr;
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

void GuardedHttpServer::refuse(socket_t sock) {
  refused_++;
  const std::string response = error_response(503, "Service Unavailable",
                                              "this node has " + std::to_string(limits_.max_connections) +
                                                  " HTTP connections open, its limit: try again shortly",
                                              "too_many_connections");
  ::send(sock, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(sock, SHUT_WR);
  // What the client has sent already is read, so that closing does not reset the connection
  // before the client has read the answer.
  char discard[4096];
  while (::recv(sock, discard, sizeof discard, MSG_DONTWAIT) > 0) {
  }
  ::close(sock);
}

}  // namespace troupe::cli
