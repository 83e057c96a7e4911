#include "support/http.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace troupe::test {

namespace {

int connect_to(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  timeval timeout{60, 0};  // a hung server fails the test instead of hanging it
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
  }
  return fd;
}

void send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error("send failed");
    sent += static_cast<std::size_t>(n);
  }
}

std::string request_text(int port, const std::string& method, const std::string& path,
                         const std::string& body, const std::string& content_type,
                         const HttpHeaders& headers = {}) {
  std::string host = "127.0.0.1:" + std::to_string(port);
  std::string extra;
  for (const auto& [name, value] : headers) {
    if (name == "Host") {
      host = value;
    } else {
      extra += name + ": " + value + "\r\n";
    }
  }
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n" + extra;
  if (method == "POST") {
    r += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return r + "\r\n" + body;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

HttpResponse http_request(int port, const std::string& method, const std::string& path,
                          const std::string& body, const std::string& content_type, const HttpHeaders& headers) {
  const int fd = connect_to(port);
  std::string raw;
  try {
    send_all(fd, request_text(port, method, path, body, content_type, headers));
    char buffer[65536];
    ssize_t n;
    while ((n = recv(fd, buffer, sizeof buffer, 0)) > 0) raw.append(buffer, static_cast<std::size_t>(n));
  } catch (...) {
    close(fd);
    throw;
  }
  close(fd);

  HttpResponse r;
  const auto head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) {
    throw std::runtime_error("not an HTTP response: " + raw.substr(0, 200));
  }
  r.status = std::stoi(raw.substr(9, 3));
  std::size_t at = raw.find("\r\n") + 2;
  while (at < head_end) {
    const auto eol = raw.find("\r\n", at);
    const std::string line = raw.substr(at, eol - at);
    const auto colon = line.find(':');
    if (colon != std::string::npos) {
      r.headers[lower(line.substr(0, colon))] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    at = eol + 2;
  }
  const std::string payload = raw.substr(head_end + 4);
  if (lower(r.headers["transfer-encoding"]) != "chunked") {
    r.body = payload;
    return r;
  }
  std::size_t p = 0;
  while (true) {
    const auto eol = payload.find("\r\n", p);
    if (eol == std::string::npos) throw std::runtime_error("chunked body cut short");
    const std::size_t size = std::stoul(payload.substr(p, eol - p), nullptr, 16);
    if (size == 0) break;
    if (eol + 2 + size + 2 > payload.size()) throw std::runtime_error("chunk cut short");
    r.chunks.push_back(payload.substr(eol + 2, size));
    r.body += r.chunks.back();
    p = eol + 2 + size + 2;
  }
  return r;
}

std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> events;
  std::size_t p = 0;
  while (p < body.size()) {
    const auto end = body.find("\n\n", p);
    if (end == std::string::npos || body.compare(p, 6, "data: ") != 0) {
      throw std::runtime_error("not a server-sent event at byte " + std::to_string(p) + ": " +
                               body.substr(p, 80));
    }
    events.push_back(body.substr(p + 6, end - p - 6));
    p = end + 2;
  }
  return events;
}

std::vector<std::pair<std::string, std::string>> named_sse_events(const std::string& body) {
  std::vector<std::pair<std::string, std::string>> events;
  std::size_t p = 0;
  while (p < body.size()) {
    const auto end = body.find("\n\n", p);
    const auto eol = body.find('\n', p);
    if (end == std::string::npos || body.compare(p, 7, "event: ") != 0 || body.compare(eol + 1, 6, "data: ") != 0) {
      throw std::runtime_error("not a named server-sent event at byte " + std::to_string(p) + ": " +
                               body.substr(p, 80));
    }
    events.emplace_back(body.substr(p + 7, eol - p - 7), body.substr(eol + 7, end - eol - 7));
    p = end + 2;
  }
  return events;
}

HttpStream::HttpStream(int port, const std::string& path, const std::string& body)
    : fd_(connect_to(port)) {
  send_all(fd_, request_text(port, "POST", path, body, "application/json"));
}

HttpStream::~HttpStream() { close(fd_); }

std::string HttpStream::read_until(const std::string& text) {
  char buffer[4096];
  while (received_.find(text) == std::string::npos) {
    const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    received_.append(buffer, static_cast<std::size_t>(n));
  }
  return received_;
}

}  // namespace troupe::test

namespace troupe::test {

bool wait_healthy(int port, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    try {
      if (http_request(port, "GET", "/health").status == 200) return true;
    } catch (const std::exception&) {
      // not listening yet
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

struct HalfSentRequests::State {
  std::vector<int> fds;
  std::vector<std::string> received;
  std::vector<bool> closed;
  mutable std::mutex mutex;  // received and closed
  std::atomic<bool> stop{false};
  std::thread drip;
};

HalfSentRequests::HalfSentRequests(int port, std::size_t count) : state_(std::make_unique<State>()) {
  State& s = *state_;
  for (std::size_t i = 0; i < count; i++) {
    s.fds.push_back(connect_to(port));
    send_all(s.fds.back(), "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n");
  }
  s.received.resize(count);
  s.closed.resize(count, false);
  s.drip = std::thread([&s] {
    while (!s.stop) {
      for (const int fd : s.fds) send(fd, "X-a: b\r\n", 8, MSG_NOSIGNAL | MSG_DONTWAIT);
      for (int i = 0; i < 10 && !s.stop; i++) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
}

HalfSentRequests::~HalfSentRequests() {
  state_->stop = true;
  state_->drip.join();
  for (const int fd : state_->fds) close(fd);
}

std::size_t HalfSentRequests::size() const { return state_->fds.size(); }

std::size_t HalfSentRequests::closed_by_server() {
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  std::size_t closed = 0;
  for (std::size_t i = 0; i < s.fds.size(); i++) {
    char buffer[4096];
    while (!s.closed[i]) {
      const ssize_t n = recv(s.fds[i], buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0) {
        s.received[i].append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        s.closed[i] = true;
      } else {
        break;
      }
    }
    closed += s.closed[i];
  }
  return closed;
}

std::string HalfSentRequests::received(std::size_t i) const {
  std::lock_guard lock(state_->mutex);
  return state_->received.at(i);
}

}  // namespace troupe::test
