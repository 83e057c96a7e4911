// How a node reaches other nodes and its clients, how it reads the time, and where its
// unpredictable numbers come from: small interfaces, so the actors run unchanged over ZeroMQ
// (troupe/net/zmq_transport.hpp) and over the simulator's virtual links, clock and seeded
// randomness.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace troupe {

using Frame = std::vector<uint8_t>;

// Who sent a frame: a peer (another node), named by the address it advertises, or a client,
// named by the opaque route its connection came in on (reply() answers through it). The
// transport says which: ZeroMQ by the routing id a node's connections carry (docs/protocol.md,
// "Transport"), the simulator and the tests by who called. A peer's address is what the sender
// claims under the mesh's key: a member can claim another member's (docs/security.md).
struct Origin {
  enum class Kind : uint8_t { peer, client };
  Kind kind = Kind::client;
  std::string id;  // a peer's address, or a client's route

  static Origin peer(std::string address) { return {Kind::peer, std::move(address)}; }
  static Origin client(std::string route) { return {Kind::client, std::move(route)}; }
  bool is_peer() const { return kind == Kind::peer; }
  bool is_peer(const std::string& address) const { return kind == Kind::peer && id == address; }
  bool is_client() const { return kind == Kind::client; }
  // For log lines: the address, or "client " and the route (in hex unless it is printable).
  std::string describe() const {
    if (is_peer()) return id;
    bool printable = !id.empty();
    for (unsigned char c : id) printable = printable && c >= 0x20 && c < 0x7f;
    if (printable) return "client " + id;
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out = "client ";
    for (unsigned char c : id) {
      out += kDigits[c >> 4];
      out += kDigits[c & 15];
    }
    return out;
  }
  bool operator==(const Origin&) const = default;
};

// The network, as a node sees it. Peers are named by address ("host:port", where each listens);
// clients by the opaque route their connection came in on, for replies. Frames are whole
// messages (wire.hpp); the transport neither parses nor orders them beyond "frames sent to one
// address in one lane arrive in the order sent, or not at all".
class Transport {
 public:
  struct Events {
    // A frame arrived from `origin` (a client's is answered through reply(origin.id, ...)).
    std::function<void(Origin origin, Frame frame)> frame;
    // The connection to a peer broke (it exited, or stopped answering heartbeats), or came up.
    std::function<void(const std::string& address)> peer_lost;
    std::function<void(const std::string& address)> peer_connected;
    // A reply could not be delivered: the client behind `route` is gone.
    std::function<void(const std::string& route)> route_gone;
  };

  virtual ~Transport() = default;
  // Starts listening and delivering; events come on the transport's own thread, one at a time.
  virtual void start(Events events) = 0;
  // Frames to one peer travel in two lanes, each in order: the mesh protocol's (gossip, plans)
  // and the sessions'. A ping must not wait behind megabytes of activations queued on a slow
  // link: its answer would come late and the peer be suspected for nothing.
  enum class Lane { control, data };
  // Thread-safe and never blocking: frames wait in a queue while a link is slow. Called on the
  // transport's own thread (from an event or a posted task) they go out at once.
  virtual void send(const std::string& address, Frame frame, Lane lane) = 0;
  virtual void reply(const std::string& route, Frame frame) = 0;
  // Runs `task` on the transport's thread, in order with the tasks posted before it
  // (thread-safe). This is how the actor bridging the transport and the actor system handles its
  // mailbox: on the thread that owns the connections, with no hop in between.
  virtual void post(std::function<void()> task) = 0;
  // Stops delivering events and running tasks (those still queued are dropped), and closes every
  // connection.
  virtual void stop() = 0;
};

// The time, for statistics and for deciding that a peer went silent. Timers are the actor
// system's (its test coordinator advances them in simulation).
class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual time_point now() const = 0;
};

class SystemClock final : public Clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
};

// Numbers others must not predict (session ids: whoever guesses one can address frames to that
// session). On a device they come from the operating system's entropy (net::SystemRandom); the
// simulator and the tests use SeededRandom, so that a run replays exactly.
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  virtual uint64_t next() = 0;  // thread-safe
};

// splitmix64 from a seed: deterministic, and for the simulator and tests only (anyone who saw a
// few outputs could predict the rest).
class SeededRandom final : public RandomSource {
 public:
  explicit SeededRandom(uint64_t seed) : state_(seed) {}
  uint64_t next() override {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

}  // namespace troupe
