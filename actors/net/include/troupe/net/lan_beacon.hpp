// LAN discovery for `troupe node --discover`: a UDP beacon, once a second, to a multicast group
// on the local network, saying "a node of this model listens at this address". A node that
// hears a beacon of its own model from an address it has not met hands the address to the mesh
// to join, and answers the sender directly (unicast), so that discovery still works when
// multicast gets out in one direction only. Off by default: --join needs no such traffic.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace troupe::net {

inline constexpr const char* kBeaconGroup = "239.255.77.77";
inline constexpr int kBeaconPort = 7947;

class LanBeacon {
 public:
  // `found` is called on the beacon's thread with each address heard of.
  LanBeacon(std::string address, std::string model, int port,
            std::function<void(const std::string&)> found);
  ~LanBeacon();
  LanBeacon(const LanBeacon&) = delete;
  LanBeacon& operator=(const LanBeacon&) = delete;

 private:
  void loop();

  std::string address_, model_;
  int port_;
  std::function<void(const std::string&)> found_;
  int socket_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace troupe::net
