// The Transport over ZeroMQ: one ROUTER socket bound at the node's --listen address receives
// every frame (from peers and clients alike); one DEALER socket per peer and lane sends to it
// (two connections: the ROUTER queues them fairly, so control frames pass a data backlog). It lives in
// actors/, not runtime/, so that the engine, the wire codec and the simulator never link ZeroMQ.
//
// Who sent a frame (Origin): each DEALER carries a routing id made of this node's advertised
// address and the lane (peer_routing_id), which the ROUTER reads back as the peer's address; a
// connection without one (a client: ZeroMQ makes up an id starting with a zero byte) is a client,
// answered through that id. The ROUTER hands an id over to the newest connection that presents it
// (ZMQ_ROUTER_HANDOVER): a peer restarted at the same address takes its place at once instead of
// being refused while its old connection has not yet timed out.
//
// Every connection runs under CURVE with the mesh's keys (mesh_key.hpp), or under none with
// --insecure: the ROUTER is the CURVE server, the DEALERs its clients, and a peer that fails the
// handshake is logged and never delivers a frame (handshake_guard.hpp). A peer counts as
// connected once its handshake has succeeded.
//
// Bounded: at most Options::max_peers peers have DEALERs at once (the least recently used are
// closed first to make room), a peer's DEALERs are closed once nothing was sent to it for
// Options::link_idle, and ZeroMQ's socket limit and the process's open-file limit are raised to
// what that many peers need. Invented members by the thousand therefore cost a bounded number
// of sockets, and a real node can always still connect (ZeroMQ's default allows 1,023 sockets:
// three per peer and lane, with the monitors, ran out at 170 peers).
//
// A single I/O thread owns every socket (ZeroMQ sockets are not thread-safe): send(), reply()
// and post() from other threads queue their work and wake it through an eventfd; on the I/O
// thread itself send() and reply() go straight to the socket. A socket monitor on each DEALER reports the
// connection to a peer coming up and breaking; ZMTP heartbeats break connections that went
// silent (a half-open TCP connection never would on its own).
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "troupe/net/mesh_key.hpp"
#include "troupe/protocol/transport.hpp"

namespace troupe::net {

// The routing id of a node's DEALER in `lane`: "troupe/peer/c/" (control) or "troupe/peer/d/"
// (data) and the address it advertises. Unique per node and lane, as the ROUTER needs.
std::string peer_routing_id(const std::string& address, Transport::Lane lane);
// Who presented `routing_id`: the peer named in a peer_routing_id, else a client.
Origin origin_of(const std::string& routing_id);

class ZmqTransport final : public Transport {
 public:
  // The peers one node keeps DEALERs to at once (the mesh protocol's own limit on members in a
  // status or a gossip), and how long a peer's DEALERs stay open with nothing sent: longer than
  // the membership's probe round over a mesh of that size (a member probed every 250 ms in turn),
  // so that a live member's connections stay up.
  static constexpr std::size_t kMaxLinkedPeers = 256;
  static constexpr std::chrono::seconds kLinkIdle{90};
  struct Options {
    std::string listen;     // host:port it binds
    std::string advertise;  // how peers name it (its DEALERs' routing ids); empty: `listen`
    MeshSecurity security = MeshSecurity::insecure();
    std::size_t max_peers = kMaxLinkedPeers;
    std::chrono::milliseconds link_idle = kLinkIdle;
  };

  // Binds at once, so that a bad or busy address fails here: InputError for an address ZeroMQ
  // cannot read (or one too long to name a connection), RuntimeFailure for one it cannot bind.
  explicit ZmqTransport(Options options);
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
  // Peers it holds DEALERs to now (any thread).
  std::size_t linked_peers() const { return linked_peers_.load(std::memory_order_relaxed); }

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
  void poll_once();
  Link& link(const std::string& address, Lane lane);
  void close_idle_links();
  void close_links(const std::string& address);

  Options options_;
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
  std::atomic<std::size_t> linked_peers_{0};
  std::thread thread_;
  std::atomic<std::thread::id> io_thread_{};
};

}  // namespace troupe::net
