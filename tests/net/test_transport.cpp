// The ZeroMQ transport under CURVE, in one process over loopback: holders of the mesh secret
// exchange frames; a peer with another secret, a raw socket without CURVE, a client that knows
// the server's key but not the client's, and an --insecure peer are refused at the handshake,
// and not one of their frames is delivered.
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <zmq.hpp>

#include "support/nodes.hpp"
#include "troupe/net/zmq_transport.hpp"

using namespace troupe;
using namespace troupe::net;
using namespace std::chrono_literals;

namespace {

MeshSecurity mesh(uint8_t fill) {
  MeshSecret s;
  s.fill(fill);
  return MeshSecurity::from_secret(s);
}

// A transport listening on a fresh loopback port, recording what it is told.
struct Endpoint {
  std::string address = "127.0.0.1:" + std::to_string(test::free_port());
  ZmqTransport transport;
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<Frame> frames;
  std::vector<std::string> connected;

  explicit Endpoint(const MeshSecurity& security) : transport(address, security) {
    Transport::Events e;
    e.frame = [this](std::string, Frame f) { record(frames, std::move(f)); };
    e.peer_connected = [this](const std::string& a) { record(connected, a); };
    transport.start(std::move(e));
  }
  template <typename T>
  void record(std::vector<T>& to, T value) {
    std::lock_guard lock(mutex);
    to.push_back(std::move(value));
    changed.notify_all();
  }
  // Waits up to `timeout` for `n` frames; the frames there are then.
  std::vector<Frame> wait_frames(std::size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex);
    changed.wait_for(lock, timeout, [&] { return frames.size() >= n; });
    return frames;
  }
  bool wait_connected(const std::string& to, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout,
                            [&] { return std::find(connected.begin(), connected.end(), to) != connected.end(); });
  }
  bool wait_refused(uint64_t n, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (transport.refused_handshakes() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    return transport.refused_handshakes() >= n;
  }
};

const Frame kHello = {'h', 'e', 'l', 'l', 'o'};

}  // namespace

TEST_CASE("holders of the mesh secret exchange frames under CURVE", "[net][transport]") {
  Endpoint a(mesh(1)), b(mesh(1));
  a.transport.send(b.address, kHello, Transport::Lane::data);
  a.transport.send(b.address, {'x'}, Transport::Lane::control);
  const auto got = b.wait_frames(2, 5s);
  REQUIRE(got.size() == 2);
  CHECK(std::count(got.begin(), got.end(), kHello) == 1);
  CHECK(a.wait_connected(b.address, 5s));
  CHECK(b.transport.refused_handshakes() == 0);

  // --insecure on both sides works too, without CURVE.
  Endpoint c(MeshSecurity::insecure()), d(MeshSecurity::insecure());
  c.transport.send(d.address, kHello, Transport::Lane::data);
  CHECK(d.wait_frames(1, 5s).size() == 1);
  CHECK(c.wait_connected(d.address, 5s));
}

TEST_CASE("a peer of another mesh or of --insecure is refused both ways and delivers nothing", "[net][transport]") {
  Endpoint node(mesh(1)), stranger(mesh(2)), insecure(MeshSecurity::insecure());
  for (Endpoint* from : {&stranger, &insecure}) {
    for (int i = 0; i < 3; i++) from->transport.send(node.address, kHello, Transport::Lane::data);
  }
  node.transport.send(insecure.address, kHello, Transport::Lane::data);  // secure -> insecure
  CHECK(node.wait_refused(2, 5s));
  CHECK(insecure.wait_refused(1, 5s));
  std::this_thread::sleep_for(500ms);  // reconnections go on failing
  CHECK(node.wait_frames(1, 0ms).empty());
  CHECK(insecure.wait_frames(1, 0ms).empty());
  CHECK_FALSE(stranger.wait_connected(node.address, 0ms));
  CHECK_FALSE(insecure.wait_connected(node.address, 0ms));
  CHECK_FALSE(node.wait_connected(insecure.address, 0ms));
}

TEST_CASE("raw ZeroMQ sockets without the client key are refused", "[net][transport]") {
  const MeshSecurity ours = mesh(1);
  Endpoint node(ours);
  zmq::context_t context;
  // No CURVE at all.
  zmq::socket_t plain(context, zmq::socket_type::dealer);
  plain.set(zmq::sockopt::linger, 0);
  plain.connect("tcp://" + node.address);
  plain.send(zmq::buffer(kHello), zmq::send_flags::dontwait);
  CHECK(node.wait_refused(1, 5s));
  // CURVE with the server's public key (as if it had leaked) but a client key of its own: the
  // handshake decrypts, and the ZAP handler refuses the key.
  char public_z85[41], secret_z85[41];
  REQUIRE(zmq_curve_keypair(public_z85, secret_z85) == 0);
  zmq::socket_t keyed(context, zmq::socket_type::dealer);
  keyed.set(zmq::sockopt::linger, 0);
  keyed.set(zmq::sockopt::curve_serverkey, zmq::buffer(ours.server().public_key));
  keyed.set(zmq::sockopt::curve_publickey, std::string(public_z85));
  keyed.set(zmq::sockopt::curve_secretkey, std::string(secret_z85));
  const uint64_t before = node.transport.refused_handshakes();
  keyed.connect("tcp://" + node.address);
  keyed.send(zmq::buffer(kHello), zmq::send_flags::dontwait);
  CHECK(node.wait_refused(before + 1, 5s));
  std::this_thread::sleep_for(300ms);
  CHECK(node.wait_frames(1, 0ms).empty());
  // Nothing comes back to either.
  zmq::message_t reply;
  CHECK_FALSE(plain.recv(reply, zmq::recv_flags::dontwait));
  CHECK_FALSE(keyed.recv(reply, zmq::recv_flags::dontwait));
}
