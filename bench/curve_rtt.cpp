// troupe-curve-rtt: what CURVE costs one hop of the mesh, on the sockets troupe uses. A DEALER
// (a node's or client's connection) sends a frame to a ROUTER (a node's listening socket) in
// another thread, which sends it straight back through the ROUTER: two frames, each encrypted
// and decrypted once under CURVE (XSalsa20-Poly1305 with the session keys of the handshake) or
// passed in clear without it. Both connections stay up and frames alternate between them, over
// tcp on loopback, for frames of several sizes (a stories260K hidden state, TinyLlama-1.1B's 2048
// f32 = 8 KiB, a batch). Prints per size the median round trip of each and the median difference
// of adjacent pairs. The socket options are the transport's (actors/net/src/zmq_socket.cpp); the
// keys are random (derivation happens once per process and costs nothing per frame).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

namespace {

struct Keys {
  char server_public[41], server_secret[41], client_public[41], client_secret[41];
  Keys() {
    zmq_curve_keypair(server_public, server_secret);
    zmq_curve_keypair(client_public, client_secret);
  }
};

void configure(zmq::socket_t& s) {
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::heartbeat_ivl, 1000);
  s.set(zmq::sockopt::heartbeat_timeout, 5000);
  s.set(zmq::sockopt::sndhwm, 100000);
}

// One DEALER -> ROUTER connection with an echo thread behind the ROUTER, clear or under CURVE.
class Pair {
 public:
  Pair(bool curve, int port) : router_(context_, zmq::socket_type::router), dealer_(context_, zmq::socket_type::dealer) {
    const Keys keys;
    configure(router_);
    configure(dealer_);
    if (curve) {
      router_.set(zmq::sockopt::curve_server, 1);
      router_.set(zmq::sockopt::curve_secretkey, std::string(keys.server_secret));
      dealer_.set(zmq::sockopt::curve_serverkey, std::string(keys.server_public));
      dealer_.set(zmq::sockopt::curve_publickey, std::string(keys.client_public));
      dealer_.set(zmq::sockopt::curve_secretkey, std::string(keys.client_secret));
    }
    const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(port);
    router_.bind(endpoint);
    router_.set(zmq::sockopt::rcvtimeo, 100);
    echo_ = std::thread([this] {
      while (!stop_) {
        zmq::message_t id, body;
        if (!router_.recv(id) || !router_.recv(body)) continue;
        router_.send(id, zmq::send_flags::sndmore);
        router_.send(body, zmq::send_flags::none);
      }
    });
    dealer_.connect(endpoint);
  }
  ~Pair() {
    stop_ = true;
    echo_.join();
  }
  // Microseconds for one frame of `payload` there and back.
  double round_trip_us(const std::vector<char>& payload) {
    const auto t0 = std::chrono::steady_clock::now();
    dealer_.send(zmq::buffer(payload), zmq::send_flags::none);
    zmq::message_t back;
    if (!dealer_.recv(back) || back.size() != payload.size()) {
      std::fprintf(stderr, "troupe-curve-rtt: lost a frame\n");
      std::exit(1);
    }
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  }

 private:
  zmq::context_t context_{1};
  zmq::socket_t router_, dealer_;
  std::atomic<bool> stop_{false};
  std::thread echo_;
};

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::size_t(q * (v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CURVE's cost per round trip on troupe's sockets, secure and clear frames alternating"};
  int frames = 5000, port = 7391;
  std::vector<std::size_t> sizes = {256, 8192, 65536};
  app.add_option("--frames", frames, "Round trips of each kind per size (default 5000)");
  app.add_option("--sizes", sizes, "Frame sizes in bytes (default 256 8192 65536)");
  app.add_option("--port", port, "Loopback port; the next one too (default 7391)");
  CLI11_PARSE(app, argc, argv);
  if (!zmq_has("curve")) {
    std::fprintf(stderr, "troupe-curve-rtt: this libzmq has no CURVE\n");
    return 1;
  }
  // Both connections are up at once and frames alternate between them, so that whatever else
  // the machine does falls on both alike; the difference is taken frame pair by frame pair.
  Pair clear(false, port), curve(true, port + 1);
  std::printf("| frame | clear µs | CURVE µs | CURVE − clear, per pair of frames: median (quartiles) |\n"
              "|---|---|---|---|\n");
  for (std::size_t bytes : sizes) {
    const std::vector<char> payload(bytes, 'x');
    std::vector<double> c, s, d;
    for (int i = -100; i < frames; i++) {  // the first 100 warm up (and wait for the handshake)
      const double a = clear.round_trip_us(payload), b = curve.round_trip_us(payload);
      if (i < 0) continue;
      c.push_back(a);
      s.push_back(b);
      d.push_back(b - a);
    }
    const double mc = median(c);
    std::printf("| %zu B | %.1f | %.1f | %+.1f µs (%+.1f to %+.1f), %+.0f%% |\n", bytes, mc, median(s), median(d),
                quantile(d, 0.25), quantile(d, 0.75), 100 * median(d) / mc);
  }
  return 0;
}
