// The Transport over ZeroMQ: one ROUTER socket bound at the node's --listen address receives
// every frame (from peers and clients alike); one DEALER socket per peer and lane sends to it
// (two connections: the ROUTER queues them fairly, so control frames pass a data backlog). It lives in
// actors/, not runtime/, so that the engine, the wire codec and the simulator never link ZeroMQ.
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

#include "troupe/protocol/transport.hpp"

namespace troupe::net {

class ZmqTransport final : public Transport {
 public:
  // Binds at once, so that a bad or busy address fails here: InputError for an address ZeroMQ
  // cannot read, RuntimeFailure for one it cannot bind.
  explicit ZmqTransport(const std::string& listen_address);
  ~ZmqTransport() override;

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

 private:
  struct Sockets;
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
  void run_queue();
  void push(Work work);
  void send_now(const std::string& address, const Frame& frame, Lane lane);
  void reply_now(const std::string& route, const Frame& frame);

  std::string listen_address_;
  std::unique_ptr<Sockets> sockets_;
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
