// The ZeroMQ transport under CURVE, in one process over loopback: holders of the mesh secret
// exchange frames; a peer with another secret, a raw socket without CURVE, a client that knows
// the server's key but not the client's, and an --insecure peer are refused at the handshake,
// and not one of their frames is delivered. The receiver knows which peer (by the address it
// advertises) or client sent each frame; a node keeps DEALERs to a bounded number of peers and
// closes those it has not sent to for a while.
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "support/nodes.hpp"
#include "troupe/net/system_random.hpp"
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
  std::vector<Origin> origins;  // of each frame
  std::vector<std::string> connected;

  explicit Endpoint(const MeshSecurity& security) : Endpoint(ZmqTransport::Options{{}, {}, security}) {}
  explicit Endpoint(ZmqTransport::Options options) : transport(listening_here(std::move(options))) {
    Transport::Events e;
    e.frame = [this](Origin o, Frame f) {
      std::lock_guard lock(mutex);
      origins.push_back(std::move(o));
      frames.push_back(std::move(f));
      changed.notify_all();
    };
    e.peer_connected = [this](const std::string& a) { record(connected, a); };
    transport.start(std::move(e));
  }
  ZmqTransport::Options listening_here(ZmqTransport::Options options) const {
    options.listen = address;
    return options;
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

TEST_CASE("the receiver knows which peer sent a frame, and a client is a client", "[net][transport]") {
  Endpoint a(MeshSecurity::insecure()), b(MeshSecurity::insecure());
  a.transport.send(b.address, kHello, Transport::Lane::data);
  a.transport.send(b.address, kHello, Transport::Lane::control);
  REQUIRE(b.wait_frames(2, 5s).size() == 2);
  zmq::context_t context;
  zmq::socket_t client(context, zmq::socket_type::dealer);  // no routing id of a node's
  client.set(zmq::sockopt::linger, 0);
  client.connect("tcp://" + b.address);
  client.send(zmq::buffer(kHello), zmq::send_flags::none);
  REQUIRE(b.wait_frames(3, 5s).size() == 3);
  std::lock_guard lock(b.mutex);
  CHECK(b.origins[0] == Origin::peer(a.address));
  CHECK(b.origins[1] == Origin::peer(a.address));
  CHECK(b.origins[2].is_client());
  CHECK(origin_of(peer_routing_id("10.0.0.1:7000", Transport::Lane::data)) == Origin::peer("10.0.0.1:7000"));
  CHECK(origin_of(std::string("\0\x8b\x45\x67\x89", 5)).is_client());
}

TEST_CASE("thousands of invented members cost a bounded number of sockets, and a real peer still gets through",
          "[net][transport]") {
  Endpoint a(MeshSecurity::insecure()), b(MeshSecurity::insecure());
  for (int i = 0; i < 2000; i++) {  // loopback addresses where nothing listens
    a.transport.send("127.77." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + ":9", kHello,
                     Transport::Lane::data);
  }
  a.transport.send(b.address, kHello, Transport::Lane::data);
  CHECK(b.wait_frames(1, 10s).size() == 1);
  CHECK(a.transport.linked_peers() <= ZmqTransport::kMaxLinkedPeers);
  CHECK(a.transport.linked_peers() >= 1);
}

TEST_CASE("a peer's sockets are closed once nothing was sent to it for a while, and open again", "[net][transport]") {
  ZmqTransport::Options quick;
  quick.security = MeshSecurity::insecure();
  quick.link_idle = 200ms;
  Endpoint a(quick), b(MeshSecurity::insecure());
  a.transport.send(b.address, kHello, Transport::Lane::data);
  REQUIRE(b.wait_frames(1, 5s).size() == 1);
  CHECK(a.transport.linked_peers() == 1);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (a.transport.linked_peers() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
  CHECK(a.transport.linked_peers() == 0);
  a.transport.send(b.address, kHello, Transport::Lane::data);
  CHECK(b.wait_frames(2, 5s).size() == 2);
}

TEST_CASE("a node restarted at the same address takes over its connections at once", "[net][transport]") {
  Endpoint a(MeshSecurity::insecure());
  ZmqTransport::Options same;
  same.security = MeshSecurity::insecure();
  same.advertise = "127.0.0.1:1";  // both claim one address, as a restarted node does
  Endpoint before(same), after(same);
  before.transport.send(a.address, kHello, Transport::Lane::data);
  REQUIRE(a.wait_frames(1, 5s).size() == 1);
  after.transport.send(a.address, kHello, Transport::Lane::data);  // while the first is still connected
  REQUIRE(a.wait_frames(2, 5s).size() == 2);
  std::lock_guard lock(a.mutex);
  CHECK(a.origins[1] == Origin::peer("127.0.0.1:1"));
}

TEST_CASE("the system's random numbers differ from draw to draw", "[net]") {
  SystemRandom random;
  std::set<uint64_t> drawn;
  uint64_t ones = 0, zeros = 0;
  for (int i = 0; i < 64; i++) {
    const uint64_t x = random.next();
    drawn.insert(x);
    ones |= x;
    zeros |= ~x;
  }
  CHECK(drawn.size() == 64);
  CHECK(ones == ~uint64_t(0));  // every bit was 1 in some draw, and 0 in some
  CHECK(zeros == ~uint64_t(0));
}
