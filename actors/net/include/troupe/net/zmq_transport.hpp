// The Transport over ZeroMQ: one ROUTER socket bound at the node's --listen address receives
// every frame (from peers and clients alike); one DEALER socket per peer and lane sends to it
// (two connections: the ROUTER queues them fairly, so control frames pass a data backlog). It lives in
// actors/, not runtime/, so that the engine, the wire codec and the simulator never link ZeroMQ.
//
// Every connection runs under CURVE with the mesh's keys (mesh_key.hpp), or under none with
// --insecure: the ROUTER is the CURVE server, the DEALERs its clients, and a peer that fails the
// handshake is logged and never delivers a frame (handshake_guard.hpp). A peer counts as
// connected once its handshake has succeeded.
//
// A single I/O thread owns every socket (ZeroMQ sockets are not thread-safe): send(), reply()
// and post() from other threads queue their work and wake it through an eventfd; on the I/O
// thread itself send() and reply() go straight to the socket. A socket monitor on each DEALER reports the
// connection to a peer coming up and breaking; ZMTP heartbeats break connections that went
// silent (a half-open TCP connection never would on its own).
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "troupe/net/mesh_key.hpp"
#include "troupe/protocol/transport.hpp"

namespace troupe::net {

class ZmqTransport final : public Transport {
 public:
  // Binds at once, so that a bad or busy address fails here: InputError for an address ZeroMQ
  // cannot read, RuntimeFailure for one it cannot bind.
  ZmqTransport(const std::string& listen_address, const MeshSecurity& security);
  ~ZmqTransport() override;

  // Before start(): warns every few seconds, naming `flag` ("--join"), until a handshake with
  // `address` has succeeded, and says why when it fails (nothing answers, or a peer of another
  // mesh), instead of leaving a node alone in a mesh of one without a word.
  void expect_peer(const std::string& address, const std::string& flag);

  void start(Events events) override;
  void send(const std::string& address, Frame frame, Lane lane) override;
  void reply(const std::string& route, Frame frame) override;
  void post(std::function<void()> task) override;
  // Frames and bytes sent and received so far.
  struct Traffic {
    uint64_t frames_sent, bytes_sent, frames_received, bytes_received;
  };
  Traffic traffic() const {
    return {frames_sent_.load(std::memory_order_relaxed), bytes_sent_.load(std::memory_order_relaxed),
            frames_received_.load(std::memory_order_relaxed), bytes_received_.load(std::memory_order_relaxed)};
  }
  void stop() override;
  // Incoming connections refused at the handshake so far (any thread).
  uint64_t refused_handshakes() const;

 private:
  struct Sockets;
  struct Link;
  using LinkKey = std::pair<std::string, Lane>;
  // A frame to a peer address or a client route, or a task.
  struct Work {
    enum class Kind { send, reply, task } kind;
    std::string destination;
    Lane lane = Lane::data;
    Frame frame;
    std::function<void()> task;
  };
  bool on_io_thread() const { return std::this_thread::get_id() == io_thread_.load(); }
  void loop();
  void receive_frames();
  void read_link_events(const LinkKey& key, Link& link);
  void warn_expected_peers();
  void run_queue();
  void push(Work work);
  void send_now(const std::string& address, const Frame& frame, Lane lane);
  void reply_now(const std::string& route, const Frame& frame);

  std::string listen_address_;
  MeshSecurity security_;
  std::unique_ptr<Sockets> sockets_;
  struct Expected {
    std::string flag;
    bool answered = false;
  };
  std::map<std::string, Expected> expected_;  // by address; the I/O thread's once started
  Events events_;
  int wake_fd_ = -1;
  std::mutex mutex_;
  std::deque<Work> queue_;
  std::atomic<bool> stopping_{false};
  // Traffic, logged when the transport stops (the benchmark reads bytes per token from it) and
  // read by status (any thread: relaxed atomics, written on the transport's thread only).
  std::atomic<uint64_t> frames_sent_{0}, bytes_sent_{0}, frames_received_{0}, bytes_received_{0};
  std::thread thread_;
  std::atomic<std::thread::id> io_thread_{};
};

}  // namespace troupe::net
