// LAN beacons (which ones a node acts on), how refused connections are logged, and addresses.
#include <catch2/catch.hpp>

#include "troupe/model/error.hpp"
#include "troupe/net/addresses.hpp"
#include "troupe/net/lan_beacon.hpp"
#include "troupe/net/refusal_log.hpp"

using namespace troupe;
using namespace troupe::net;

namespace {

MeshSecurity mesh(uint8_t fill) {
  MeshSecret s;
  s.fill(fill);
  return MeshSecurity::from_secret(s);
}

constexpr int64_t kNow = 1'700'000'000'000;  // ms since the epoch

}  // namespace

TEST_CASE("a node acts on fresh beacons of its own mesh only, each once", "[net][beacons]") {
  const MeshSecurity ours = mesh(1), theirs = mesh(2);
  BeaconFilter filter(ours.beacon_key());
  Beacon heard;
  using V = BeaconFilter::Verdict;

  const std::string genuine = encode_beacon({"10.0.0.2:7000", "model-x", kNow}, ours.beacon_key());
  REQUIRE(filter.check(genuine, kNow + 200, heard) == V::accepted);
  CHECK(heard.address == "10.0.0.2:7000");
  CHECK(heard.model == "model-x");
  CHECK(heard.sent_ms == kNow);

  // The same datagram again, or an older one of that address: a replay.
  CHECK(filter.check(genuine, kNow + 300, heard) == V::replayed);
  CHECK(filter.check(encode_beacon({"10.0.0.2:7000", "model-x", kNow - 1000}, ours.beacon_key()), kNow + 300,
                     heard) == V::replayed);
  // A newer one is the node still there.
  CHECK(filter.check(encode_beacon({"10.0.0.2:7000", "model-x", kNow + 1000}, ours.beacon_key()), kNow + 1100,
                     heard) == V::accepted);

  // Another mesh's beacon, and ours with the address (or time) changed on the way: no MAC fits.
  CHECK(filter.check(encode_beacon({"10.0.0.3:7000", "model-x", kNow}, theirs.beacon_key()), kNow, heard) ==
        V::other_mesh);
  std::string forged = genuine;
  forged.replace(forged.find("10.0.0.2"), 8, "10.6.6.6");
  CHECK(filter.check(forged, kNow, heard) == V::other_mesh);
  std::string retimed = encode_beacon({"10.0.0.4:7000", "model-x", kNow}, ours.beacon_key());
  retimed.replace(retimed.find(std::to_string(kNow)), 13, std::to_string(kNow + 5000));
  CHECK(filter.check(retimed, kNow, heard) == V::other_mesh);
  // An insecure mesh's beacons are not a secure one's, and the other way round.
  BeaconFilter insecure(MeshSecurity::insecure().beacon_key());
  CHECK(insecure.check(encode_beacon({"10.0.0.5:7000", "m", kNow}, ours.beacon_key()), kNow, heard) ==
        V::other_mesh);
  CHECK(filter.check(encode_beacon({"10.0.0.5:7000", "m", kNow}, MeshSecurity::insecure().beacon_key()), kNow,
                     heard) == V::other_mesh);

  // Stale: sent more than 30 s before (or after) the receiver's now.
  const auto age = std::chrono::milliseconds(kBeaconMaxAge).count();
  const std::string old = encode_beacon({"10.0.0.6:7000", "model-x", kNow}, ours.beacon_key());
  CHECK(filter.check(old, kNow + age + 1, heard) == V::stale);
  CHECK(filter.check(old, kNow - age - 1, heard) == V::stale);
  CHECK(filter.check(old, kNow + age, heard) == V::accepted);

  // Not beacons at all: the format of protocol 1 (no MAC), garbage, extra lines.
  CHECK(filter.check("troupe-beacon 1\n10.0.0.7:7000\nmodel-x\n", kNow, heard) == V::not_a_beacon);
  CHECK(filter.check("", kNow, heard) == V::not_a_beacon);
  CHECK(filter.check(genuine + "more\n", kNow, heard) == V::not_a_beacon);
  CHECK(filter.check(genuine.substr(0, genuine.size() - 1), kNow, heard) == V::not_a_beacon);
}

TEST_CASE("refused connections are logged once per address and a flood in a few lines", "[net][log]") {
  RefusalLog log;
  const auto t0 = RefusalLog::Clock::now();
  auto line = log.refused("10.0.0.9", "why", t0);
  REQUIRE(line);
  CHECK(line->find("10.0.0.9") != std::string::npos);
  CHECK(line->find("why") != std::string::npos);
  // Again within the minute: counted, not logged; after it, logged with the count.
  for (int i = 0; i < 5; i++) CHECK_FALSE(log.refused("10.0.0.9", "why", t0 + std::chrono::seconds(1 + i)));
  line = log.refused("10.0.0.9", "why", t0 + RefusalLog::kWindow + std::chrono::seconds(1));
  REQUIRE(line);
  CHECK(line->find("5 more") != std::string::npos);

  // A thousand addresses in one minute: a few lines, then one summary.
  RefusalLog flood;
  int lines = 0;
  for (int i = 0; i < 1000; i++) {
    lines += bool(flood.refused("10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250), "why",
                                t0 + std::chrono::milliseconds(i)));
  }
  CHECK(lines == RefusalLog::kLinesPerWindow);
  CHECK_FALSE(flood.summary(t0 + std::chrono::seconds(2)));  // the minute is not over
  const auto summary = flood.summary(t0 + RefusalLog::kWindow + std::chrono::seconds(1));
  REQUIRE(summary);
  CHECK(summary->find(std::to_string(1000 - RefusalLog::kLinesPerWindow) + " more") != std::string::npos);
  CHECK_FALSE(flood.summary(t0 + RefusalLog::kWindow + std::chrono::seconds(2)));  // said once
}

TEST_CASE("addresses: IPv6 in brackets, wildcards, and the address a node advertises", "[net][addresses]") {
  CHECK(split_address("[::1]:7000")->host == "[::1]");
  CHECK(split_address("[::1]:7000")->port == "7000");
  CHECK(split_address("host:1")->host == "host");
  CHECK_FALSE(split_address("::1:7000"));  // IPv6 hosts need brackets
  CHECK_FALSE(split_address("host"));
  CHECK(is_ipv6("[fd00::1]:7000"));
  CHECK_FALSE(is_ipv6("10.0.0.1:7000"));
  CHECK(is_wildcard("0.0.0.0:7000"));
  CHECK(is_wildcard("[::]:7000"));
  CHECK(is_wildcard("*:7000"));
  CHECK_FALSE(is_wildcard("127.0.0.1:7000"));
  CHECK(local_address("0.0.0.0:7000") == "127.0.0.1:7000");
  CHECK(local_address("[::]:7000") == "[::1]:7000");
  CHECK(local_address("10.0.0.1:7000") == "10.0.0.1:7000");

  CHECK(advertised_address("0.0.0.0:7000", "node.lan:7000", std::nullopt) == "node.lan:7000");
  CHECK(advertised_address("10.0.0.1:7000", "", std::nullopt) == "10.0.0.1:7000");
  // Toward a peer on this machine, the loopback interface routes.
  CHECK(advertised_address("0.0.0.0:7000", "", std::string("127.0.0.1:7001")) == "127.0.0.1:7000");
  // Without a peer: the machine's one address, or a line that asks for --advertise.
  const auto hosts = interface_addresses(true, false);
  if (hosts.size() == 1) {
    CHECK(advertised_address("0.0.0.0:7000", "", std::nullopt) == hosts.front() + ":7000");
  } else {
    try {
      advertised_address("0.0.0.0:7000", "", std::nullopt);
      FAIL("guessed among " << hosts.size() << " addresses");
    } catch (const InputError& e) {
      CHECK(std::string(e.what()).find("--advertise") != std::string::npos);
    }
  }
  for (const auto& h : hosts) CHECK(h.rfind("127.", 0) != 0);
}
