// A hostile peer for the tests: raw ZeroMQ sockets without CURVE (they reach only nodes started
// with --insecure) that send whatever frames a test builds with the project's own codec, as a
// buggy, compromised or outdated member of the mesh could.
#pragma once

#include <chrono>
#include <cstdint>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "troupe/protocol/wire.hpp"

namespace troupe::test {

// One DEALER connected to a node's ROUTER, as a client connects, or, given `as_member`, as the
// member at that address connects (its routing id names it: what a node reads as the sender of a
// member's frames; any holder of the mesh secret may present any address).
class RawPeer {
 public:
  explicit RawPeer(const std::string& address, const std::string& as_member = {});
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  void send(const wire::Message& message);
  void send_bytes(const std::vector<uint8_t>& bytes);
  // What the node sent back on this connection (its replies to a client), nullopt when nothing
  // came within `timeout`; throws InputError when what came is not a frame.
  std::optional<wire::Message> receive(std::chrono::milliseconds timeout);

 private:
  zmq::socket_t socket_;
};

// What a stranger learns of a mesh by asking `seed` for its member table (a gossip sync naming
// a ROUTER of its own as where to answer): every member's latest update, the seed's included.
// Fails the test when no table comes within `timeout`.
std::vector<wire::MemberUpdate> member_table(const std::string& seed,
                                             std::chrono::milliseconds timeout = std::chrono::seconds(5));

// A gossip frame from `from` (any address: gossip is not authenticated) carrying `updates`.
wire::Message gossip_frame(const std::string& from, std::vector<wire::MemberUpdate> updates,
                           wire::Gossip::Kind kind = wire::Gossip::Kind::sync_reply);

// A member that speaks the protocol well enough to be planned (as ../shared/repro/impostor.py
// does): it joins through `seed` with the model identity a member table gives away, claims a
// throughput of `throughput` GB/s and a terabyte of memory, acks probes, advertises whatever
// layers a plan gives it, and answers every session it is sent with `token` (an id far outside
// any vocabulary, as a buggy or compromised member may send), from its own ROUTER at address().
class ImpostorMember {
 public:
  ImpostorMember(const std::string& seed, int token, double throughput = 1000);
  ~ImpostorMember();  // it stops answering, as a process killed with -9 does
  ImpostorMember(const ImpostorMember&) = delete;
  ImpostorMember& operator=(const ImpostorMember&) = delete;

  const std::string& address() const { return address_; }
  int sessions_seen() const { return sessions_; }
  // The layers the latest plan gave it, if any.
  std::optional<LayerRange> layers() const;

 private:
  void run();
  void on_frame(const wire::Message& m);
  void send(const std::string& to, const wire::Message& m);
  wire::MemberUpdate self_update() const;

  zmq::socket_t inbox_;  // its ROUTER, where members and entries send to it
  std::string address_;
  int token_;
  wire::MemberInfo info_;
  uint64_t incarnation_ = 0;
  std::map<std::string, std::unique_ptr<RawPeer>> peers_;  // by address, used by run() alone
  std::map<uint64_t, std::string> entries_;               // each session's entry
  mutable std::mutex mutex_;                               // guards info_.layers for layers()
  std::atomic<int> sessions_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace troupe::test
