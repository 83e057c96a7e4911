// troupe-test-relay: a user-space TCP relay for the separate-host tests, put on the path between
// two hosts. It listens on each LISTEN address, connects every connection it accepts to that
// route's TARGET, and forwards bytes both ways, writing every byte it forwards to a recording.
//
//   troupe-test-relay --record DIR [--delay-ms N] LISTEN=TARGET...     (addresses IP:PORT)
//
// DIR/R-C-up.bin holds what connection C of route R sent towards TARGET, DIR/R-C-down.bin what
// came back: one plain byte stream per direction, as a sniffer on the wire would see it.
// --delay-ms holds every byte that long before passing it on (added latency, both ways).
// SIGUSR1 cuts the link: open connections are closed and new ones are accepted and closed at
// once; SIGUSR2 restores it. SIGTERM or SIGINT end the relay. It prints "relay: ready" once every
// route listens, and "relay: cut" / "relay: restored" when a signal has taken effect.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t cut_requested = 0;      // set by SIGUSR1, cleared by SIGUSR2
volatile std::sig_atomic_t stop_requested = 0;     // SIGTERM, SIGINT

extern "C" void on_signal(int sig) {
  if (sig == SIGUSR1) cut_requested = 1;
  if (sig == SIGUSR2) cut_requested = 0;
  if (sig == SIGTERM || sig == SIGINT) stop_requested = 1;
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "troupe-test-relay: %s\nusage: troupe-test-relay --record DIR [--delay-ms N] LISTEN=TARGET...\n",
               why.c_str());
  std::exit(2);
}

sockaddr_in parse_address(const std::string& text) {
  const auto colon = text.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (colon == std::string::npos || inet_pton(AF_INET, text.substr(0, colon).c_str(), &a.sin_addr) != 1) {
    usage("not an IPv4 IP:PORT: " + text);
  }
  const int port = std::atoi(text.c_str() + colon + 1);
  if (port <= 0 || port > 65535) usage("not a port: " + text);
  a.sin_port = htons(static_cast<uint16_t>(port));
  return a;
}

void set_nonblocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

struct Route {
  sockaddr_in target{};
  int listener = -1;
  int connections = 0;  // accepted so far, to name the recordings
};

// Bytes read at one time, due to be written at `due`.
struct Chunk {
  Clock::time_point due;
  std::string bytes;
};

// One direction of a relayed connection.
struct Direction {
  int from = -1, to = -1;
  int record = -1;  // the recording file
  std::deque<Chunk> queue;
  std::size_t written = 0;  // of the front chunk
  bool eof = false;         // `from` has no more to send
  bool shut = false;        // `to` was told so (after the queue drained)

  static constexpr std::size_t kMaxQueued = 1 << 20;
  std::size_t queued() const {
    std::size_t n = 0;
    for (const Chunk& c : queue) n += c.bytes.size();
    return n;
  }
  bool wants_read() const { return !eof && queued() < kMaxQueued; }
  bool has_due(Clock::time_point now) const { return !queue.empty() && queue.front().due <= now; }
  bool done() const { return shut; }
};

struct Link {
  int client = -1, server = -1;
  Direction up, down;  // client -> server, server -> client
  bool failed = false;
  ~Link() {
    for (int fd : {client, server, up.record, down.record}) {
      if (fd >= 0) close(fd);
    }
  }
};

int open_record(const std::string& dir, std::size_t route, int connection, const char* direction) {
  const std::string path = dir + "/" + std::to_string(route) + "-" + std::to_string(connection) + "-" + direction + ".bin";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  return fd;
}

void write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n <= 0) throw std::runtime_error(std::string("cannot write a recording: ") + std::strerror(errno));
    data += n;
    size -= std::size_t(n);
  }
}

// Reads what `d.from` has, records it and queues it; false when the connection failed.
bool read_into(Direction& d, std::chrono::milliseconds delay) {
  char buffer[65536];
  const ssize_t n = ::read(d.from, buffer, sizeof buffer);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (n == 0) {
    d.eof = true;
    return true;
  }
  write_all(d.record, buffer, std::size_t(n));
  d.queue.push_back({Clock::now() + delay, std::string(buffer, std::size_t(n))});
  return true;
}

// Writes the chunks that are due; false when the connection failed.
bool write_due(Direction& d) {
  const auto now = Clock::now();
  while (d.has_due(now)) {
    const std::string& bytes = d.queue.front().bytes;
    const ssize_t n = ::send(d.to, bytes.data() + d.written, bytes.size() - d.written, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    d.written += std::size_t(n);
    if (d.written < bytes.size()) return true;
    d.queue.pop_front();
    d.written = 0;
  }
  if (d.eof && d.queue.empty() && !d.shut) {
    shutdown(d.to, SHUT_WR);
    d.shut = true;
  }
  return true;
}

class Relay {
 public:
  Relay(std::string dir, std::chrono::milliseconds delay) : dir_(std::move(dir)), delay_(delay) {}

  void add_route(const std::string& listen, const std::string& target) {
    Route r;
    r.target = parse_address(target);
    const sockaddr_in at = parse_address(listen);
    r.listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(r.listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(r.listener, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0 || listen_on(r.listener) != 0) {
      throw std::runtime_error("cannot listen on " + listen + ": " + std::strerror(errno));
    }
    routes_.push_back(r);
  }

  void run() {
    std::printf("relay: ready\n");
    std::fflush(stdout);
    bool cut = false;
    while (!stop_requested) {
      if (bool(cut_requested) != cut) {
        cut = cut_requested;
        if (cut) links_.clear();
        std::printf(cut ? "relay: cut\n" : "relay: restored\n");
        std::fflush(stdout);
      }
      poll_once(cut);
    }
  }

 private:
  static int listen_on(int fd) { return ::listen(fd, 64); }

  void accept_on(std::size_t route, bool cut) {
    const int client = accept4(routes_[route].listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) return;
    if (cut) {
      close(client);
      return;
    }
    auto link = std::make_unique<Link>();
    link->client = client;
    link->server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in& t = routes_[route].target;
    if (connect(link->server, reinterpret_cast<const sockaddr*>(&t), sizeof t) != 0) return;  // closes both
    set_nonblocking(client);
    set_nonblocking(link->server);
    const int n = routes_[route].connections++;
    link->up.from = link->down.to = client;
    link->up.to = link->down.from = link->server;
    link->up.record = open_record(dir_, route, n, "up");
    link->down.record = open_record(dir_, route, n, "down");
    links_.push_back(std::move(link));
  }

  bool forward(Direction& d, short events) {
    if (!d.eof && (events & (POLLIN | POLLHUP | POLLERR)) && !read_into(d, delay_)) return false;
    return write_due(d);
  }

  // One poll over the listeners and every link, and the reads and writes it allows.
  void poll_once(bool cut) {
    std::vector<pollfd> fds;
    for (const Route& r : routes_) fds.push_back({r.listener, POLLIN, 0});
    const auto now = Clock::now();
    auto next_due = now + std::chrono::milliseconds(50);  // signals are looked at this often
    for (const auto& l : links_) {
      for (const Direction* d : {&l->up, &l->down}) {
        if (!d->queue.empty()) next_due = std::min(next_due, d->queue.front().due);
      }
      fds.push_back({l->client, short((l->up.wants_read() ? POLLIN : 0) | (l->down.has_due(now) ? POLLOUT : 0)), 0});
      fds.push_back({l->server, short((l->down.wants_read() ? POLLIN : 0) | (l->up.has_due(now) ? POLLOUT : 0)), 0});
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_due - now).count();
    if (poll(fds.data(), fds.size(), int(std::max<long>(wait, 0)) + 1) < 0) return;  // EINTR: a signal
    for (std::size_t r = 0; r < routes_.size(); r++) {
      if (fds[r].revents & POLLIN) accept_on(r, cut);
    }
    for (std::size_t i = 0; i < links_.size(); i++) {
      Link& l = *links_[i];
      const pollfd* link_fds = &fds[routes_.size() + 2 * i];  // client, server
      // A direction reads from the client (up) or the server (down).
      const bool ok = forward(l.up, link_fds[0].revents) && forward(l.down, link_fds[1].revents);
      l.failed = !ok;
    }
    std::erase_if(links_, [](const auto& l) { return l->failed || (l->up.done() && l->down.done()); });
  }

  std::string dir_;
  std::chrono::milliseconds delay_;
  std::vector<Route> routes_;
  std::vector<std::unique_ptr<Link>> links_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  long delay_ms = 0;
  std::vector<std::pair<std::string, std::string>> routes;
  for (int i = 1; i < argc; i++) {
    const std::string arg = argv[i];
    if (arg == "--record" && i + 1 < argc) {
      dir = argv[++i];
    } else if (arg == "--delay-ms" && i + 1 < argc) {
      delay_ms = std::atol(argv[++i]);
      if (delay_ms < 0) usage("--delay-ms must be >= 0");
    } else if (const auto eq = arg.find('='); eq != std::string::npos) {
      routes.emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
    } else {
      usage("unknown argument: " + arg);
    }
  }
  if (dir.empty() || routes.empty()) usage("--record DIR and at least one LISTEN=TARGET are required");
  struct sigaction sa {};
  sa.sa_handler = on_signal;  // no SA_RESTART: poll returns at once
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGUSR1, SIGUSR2, SIGTERM, SIGINT}) sigaction(sig, &sa, nullptr);
  try {
    Relay relay(dir, std::chrono::milliseconds(delay_ms));
    for (const auto& [listen, target] : routes) relay.add_route(listen, target);
    relay.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe-test-relay: %s\n", e.what());
    return 1;
  }
  return 0;
}
