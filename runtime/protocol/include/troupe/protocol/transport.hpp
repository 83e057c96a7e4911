// How a node reaches other nodes and its clients, and how it reads the time: small interfaces,
// so the actors run unchanged over ZeroMQ (actors/zmq_transport.hpp) and, later, over the
// simulator's virtual links and virtual clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace troupe {

using Frame = std::vector<uint8_t>;

// The network, as a node sees it. Peers are named by address ("host:port", where each listens);
// clients by the opaque route their connection came in on, for replies. Frames are whole
// messages (wire.hpp); the transport neither parses nor orders them beyond "frames sent to one
// address in one lane arrive in the order sent, or not at all".
class Transport {
 public:
  struct Events {
    // A frame arrived; `route` answers it through reply().
    std::function<void(std::string route, Frame frame)> frame;
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

}  // namespace troupe
