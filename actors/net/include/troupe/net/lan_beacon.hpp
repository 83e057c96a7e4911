// LAN discovery for `troupe node --discover`: a UDP beacon, once a second, to a multicast group
// on the local network, saying "a node of this mesh and model listens at this address". A node
// that hears a beacon of its own mesh and model from an address it has not met hands the address
// to the mesh to join, and answers the sender directly (unicast), so that discovery still works
// when multicast gets out in one direction only. Off by default: --join needs no such traffic.
//
// Beacons are authenticated: each carries the time it was sent and a MAC (HMAC-SHA-512-256,
// libsodium's crypto_auth) with a key derived from the mesh secret. Beacons of other meshes,
// forged ones, stale ones (sent over kBeaconMaxAge ago or ahead, by the receiver's clock) and
// replays (not newer than the last accepted from that address) are ignored. An --insecure mesh's
// beacons carry a MAC with an all-zero key: they tell secure and insecure meshes apart, no more.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>

#include "troupe/net/mesh_key.hpp"

namespace troupe::net {

inline constexpr const char* kBeaconGroup = "239.255.77.77";
inline constexpr int kBeaconPort = 7947;
inline constexpr std::chrono::seconds kBeaconMaxAge{30};

struct Beacon {
  std::string address, model;
  int64_t sent_ms = 0;  // milliseconds since the Unix epoch, by the sender's clock
};

// The datagram of `beacon`, authenticated with `key`.
std::string encode_beacon(const Beacon& beacon, const Key32& key);

// Which beacons a node acts on.
class BeaconFilter {
 public:
  enum class Verdict { accepted, not_a_beacon, other_mesh, stale, replayed };
  explicit BeaconFilter(const Key32& key) : key_(key) {}
  // Reads `datagram`, heard at `now_ms`; on `accepted`, `beacon` holds it.
  Verdict check(std::string_view datagram, int64_t now_ms, Beacon& beacon);

 private:
  Key32 key_;
  std::map<std::string, int64_t> newest_;  // the newest accepted beacon of each address
};

class LanBeacon {
 public:
  // `found` is called on the beacon's thread with each address heard of.
  LanBeacon(std::string address, std::string model, const MeshSecurity& security, int port,
            std::function<void(const std::string&)> found);
  ~LanBeacon();
  LanBeacon(const LanBeacon&) = delete;
  LanBeacon& operator=(const LanBeacon&) = delete;

 private:
  void loop();
  void send_own(const void* to, unsigned to_length);
  void receive();

  std::string address_, model_;
  Key32 key_;
  BeaconFilter filter_;
  int port_;
  std::function<void(const std::string&)> found_;
  int socket_ = -1;
  std::set<std::string> heard_;    // addresses handed on
  std::set<std::string> ignored_;  // senders whose ignored beacons were logged
  bool warned_ = false, loopback_tried_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace troupe::net
