// Frames from members that have no say over a session (a buggy, old or hostile member holding the
// mesh's key): a stage takes a session's frames only from the peer before it on the route and its
// end only from its entry; an entry takes `sampled` only from the session's last stage and `error`
// only from a stage of its route; a token outside the vocabulary fails that session and leaves
// the node serving; one entry cannot fill a stage; sessions nothing was heard of are reclaimed;
// session ids come from the node's random source; every dropped frame is counted.
#include <catch2/catch.hpp>

#include <set>

#include "mesh_checks.hpp"
#include "troupe/actors/stage_limits.hpp"

using namespace troupe;
using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

const std::string kEntry = "entry:1", kMallory = "mallory:1";  // no node listens at either

// One node holding the whole model, its stage fed directly by the test as if from `from`.
struct LoneStage {
  MemoryMesh mesh;
  TestNode& node = mesh.add_node(6, {}, LayerRange{0, 6});

  wire::SessionStart start(const std::string& entry) const {
    wire::SessionStart s;
    s.entry = entry;
    s.route = {{node.context.address, LayerRange{0, 6}}};
    s.tokens = {1, 40, 41};
    s.steps = 16;
    s.sampling.seed = 5;
    return s;
  }
  void send(const std::string& from, uint64_t id, uint64_t seq, wire::Body body) {
    mesh.peer_send(0, from, wire::Message{id, seq, std::move(body)});
    mesh.run_for(1ms);
  }
  template <class T>
  int count(const std::string& to) {
    int n = 0;
    for (const auto& m : mesh.sent_to(to)) n += std::holds_alternative<T>(m.body);
    return n;
  }
};

// Three nodes that agree on a plan, each able to hold half the model; `entry` is one that is not
// the last stage of its route, so that the tokens come to it over a link.
struct ThreeNodes {
  MemoryMesh mesh;
  int entry = -1;
  std::string address;
  ThreeNodes() {
    for (int i = 0; i < 3; i++) mesh.add_node(3, i == 0 ? std::vector<std::string>{} : std::vector<std::string>{"n0:7000"});
    REQUIRE(mesh.run_until([&] { return agreed(mesh); }, 20s));
    for (int i = 0; i < 3 && entry < 0; i++) {
      if (mesh.node(i).mesh().route().back().address != mesh.node(i).context.address) entry = i;
    }
    REQUIRE(entry >= 0);
    address = mesh.node(entry).context.address;
  }
};

}  // namespace

TEST_CASE("a stage takes a session's frames only from the peer before it, and its end only from its entry",
          "[actors][hostile]") {
  const QuietLog quiet;
  LoneStage x;
  const uint64_t id = 0x42;
  x.send(kMallory, id, 1, x.start(kEntry));  // a start that claims kEntry's route, from elsewhere
  CHECK(x.count<wire::Sampled>(kEntry) == 0);
  CHECK(x.mesh.sent_to(kMallory).empty());

  x.send(kEntry, id, 1, x.start(kEntry));
  REQUIRE(x.count<wire::Sampled>(kEntry) == 1);  // the prompt's token
  const int pos = std::get<wire::Sampled>(x.mesh.sent_to(kEntry)[0].body).pos;
  x.send(kMallory, id, 2, wire::Step{pos, 50});       // not the entry: dropped
  x.send(kMallory, id, 3, wire::SessionEnd{"forged"});  // nor may it end the session
  CHECK(x.count<wire::Sampled>(kEntry) == 1);
  CHECK(x.count<wire::Error>(kEntry) == 0);

  x.send(kEntry, id, 2, wire::Step{pos, 50});  // the entry's step: the session lives
  CHECK(x.count<wire::Sampled>(kEntry) == 2);
  CHECK(x.node.metrics.dropped_frames.total() == 3);
}

TEST_CASE("one entry cannot fill a stage, and sessions nothing was heard of are reclaimed", "[actors][hostile]") {
  const QuietLog quiet;
  LoneStage x;
  for (uint64_t id = 1; id <= uint64_t(wire::kMaxSessions); id++) x.send(kMallory, id << 32, 1, x.start(kMallory));
  CHECK(x.count<wire::Sampled>(kMallory) == int(actors::kMaxSessionsPerEntry));
  CHECK(x.count<wire::Error>(kMallory) == wire::kMaxSessions - int(actors::kMaxSessionsPerEntry));

  x.send(kEntry, 0x42, 1, x.start(kEntry));  // another entry's session still finds room
  CHECK(x.count<wire::Sampled>(kEntry) == 1);
  CHECK(x.count<wire::Error>(kEntry) == 0);

  // Nothing more is heard of kMallory's sessions: once reclaimed, it may start as many again.
  x.mesh.run_for(std::chrono::duration_cast<std::chrono::milliseconds>(actors::kSessionIdleTimeout + 2 * actors::kIdleCheck));
  const int sampled = x.count<wire::Sampled>(kMallory);
  for (uint64_t id = 100; id < 100 + actors::kMaxSessionsPerEntry; id++) x.send(kMallory, id << 32, 1, x.start(kMallory));
  CHECK(x.count<wire::Sampled>(kMallory) == sampled + int(actors::kMaxSessionsPerEntry));
}

TEST_CASE("an entry takes sampled only from the last stage and error only from the route", "[actors][hostile]") {
  const QuietLog quiet;
  ThreeNodes x;
  MemoryMesh& mesh = x.mesh;
  // Every token the entry gets from its last stage is followed by a forgery of it (another token)
  // from the other member of the mesh, and by an error from one outside the route.
  const std::string last = mesh.node(x.entry).mesh().route().back().address;
  int forged = 0;
  mesh.tap([&](const std::string& from, const std::string& to, wire::Message& m) {
    const auto* sampled = std::get_if<wire::Sampled>(&m.body);
    if (to != x.address || from != last || !sampled) return;
    for (const char* other : {"n0:7000", "n1:7000", "n2:7000"}) {
      if (other == last || other == x.address) continue;
      wire::Sampled copy = *sampled;
      copy.token = (copy.token + 1) % mesh.config().vocab_size;
      mesh.peer_send(x.entry, other, wire::Message{m.session, m.seq, copy});
      forged++;
    }
    mesh.peer_send(x.entry, kMallory, wire::Message{m.session, m.seq, wire::Error{1, "forged"}});
    forged++;
  });
  const wire::GenerateRequest r = request("hello mesh", 12, 1000);
  mesh.client_send(x.entry, "client", wire::Message{0, 1, r});
  mesh.run_until([&] { return answer(mesh, "client").has_value(); }, 5s);
  REQUIRE(answer(mesh, "client"));
  CHECK(*answer(mesh, "client") == answer_alone(r, mesh.config(), mesh.tokenizer()));
  CHECK(forged >= 12 * 2);
  CHECK(mesh.node(x.entry).metrics.dropped_frames.total() == uint64_t(forged));
}

TEST_CASE("a token outside the vocabulary fails its session, and the entry goes on serving", "[actors][hostile]") {
  const QuietLog quiet;
  ThreeNodes x;
  MemoryMesh& mesh = x.mesh;
  bool forged = false;
  mesh.tap([&](const std::string&, const std::string& to, wire::Message& m) {
    auto* s = std::get_if<wire::Sampled>(&m.body);
    if (to == x.address && s && !forged) s->token = 0x7fffffff, forged = true;
  });
  mesh.client_send(x.entry, "victim", wire::Message{0, 1, request("hello mesh", 12, 1000)});
  REQUIRE(mesh.run_until([&] { return !mesh.replies("victim").empty(); }, 5s));
  REQUIRE(forged);
  const auto* error = std::get_if<wire::Error>(&mesh.replies("victim").back().body);
  REQUIRE(error);
  CHECK(error->message.find("outside the vocabulary") != std::string::npos);

  const wire::GenerateRequest r = request("hello again", 12, 1001);
  mesh.client_send(x.entry, "next", wire::Message{0, 1, r});
  REQUIRE(mesh.run_until([&] { return answer(mesh, "next").has_value(); }, 5s));
  CHECK(*answer(mesh, "next") == answer_alone(r, mesh.config(), mesh.tokenizer()));
}

TEST_CASE("session ids are drawn from the node's random source, 64 bits, and stages see another", "[actors][hostile]") {
  const QuietLog quiet;
  ThreeNodes x;
  MemoryMesh& mesh = x.mesh;
  std::set<uint64_t> wire_ids;  // as the stages see them
  mesh.tap([&](const std::string& from, const std::string&, wire::Message& m) {
    if (from == x.address && std::holds_alternative<wire::SessionStart>(m.body)) wire_ids.insert(m.session);
  });
  // Each session draws its own id (the client's), then the id its route's stages know it by.
  SeededRandom same(uint64_t(x.entry) + 1);  // MemoryMesh seeds node i's source with i + 1
  std::set<uint64_t> client_ids, expected_wire_ids;
  for (int i = 0; i < 3; i++) {
    const uint64_t id = same.next();
    expected_wire_ids.insert(same.next());
    const std::string route = "client " + std::to_string(i);
    mesh.client_send(x.entry, route, wire::Message{0, 1, request("hello", 4, 7 + i)});
    REQUIRE(mesh.run_until([&] { return answer(mesh, route).has_value(); }, 5s));
    CHECK(mesh.replies(route).back().session == id);
    client_ids.insert(id);
  }
  CHECK(wire_ids == expected_wire_ids);
  for (const uint64_t id : client_ids) CHECK_FALSE(wire_ids.count(id));
  // All 64 bits are used: some id has its top bit set or the draws are not what they seem.
  bool high = false;
  for (const uint64_t id : wire_ids) high = high || (id >> 52) != 0;
  CHECK(high);
}
