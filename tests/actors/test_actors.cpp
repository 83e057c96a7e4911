// The node's typed actors (actors::NodeActors) on CAF's deterministic test coordinator, over
// in-memory links (memory_mesh.hpp): nodes form a mesh and elect one coordinator, the plan splits
// the model across them, a completion entering at any node is answered end to end exactly as one
// machine would answer it, and a stage refuses positions out of order. And on an actor system on
// threads, a node's actors end when stopped, letting their system go.
#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include <mutex>
#include <set>
#include <thread>

#include "mesh_checks.hpp"
#include "troupe/discovery/session.hpp"
#include "troupe/text/gguf_vocabulary.hpp"

using namespace troupe;
using namespace troupe::testing;
using namespace std::chrono_literals;

namespace {

// A transport for an actor system on threads, with no peers: posted tasks run at once, one at a
// time; replies to clients are kept.
class InlineTransport final : public Transport {
 public:
  void start(Events events) override { events_ = std::move(events); }
  void send(const std::string&, Frame, Lane) override {}
  void reply(const std::string&, Frame frame) override {
    const std::lock_guard<std::mutex> lock(mutex_);
    replies_.push_back(wire::decode(frame));
  }
  void post(std::function<void()> task) override {
    const std::lock_guard<std::recursive_mutex> lock(tasks_);
    if (!stopped_) task();
  }
  void stop() override {
    const std::lock_guard<std::recursive_mutex> lock(tasks_);
    stopped_ = true;
  }
  void client_sends(const std::string& route, wire::Message message) {
    const std::lock_guard<std::recursive_mutex> lock(tasks_);
    events_.frame(Origin::client(route), wire::encode(message));
  }
  std::vector<wire::Message> replies() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return replies_;
  }

 private:
  Events events_;
  std::recursive_mutex tasks_;  // the transport's "thread": a task may post another
  bool stopped_ = false;
  std::mutex mutex_;
  std::vector<wire::Message> replies_;
};


}  // namespace

TEST_CASE("three nodes form a mesh, elect one coordinator and split the model", "[actors]") {
  const QuietLog quiet;
  MemoryMesh mesh;
  for (int i = 0; i < 3; i++) mesh.add_node(3, i == 0 ? std::vector<std::string>{} : std::vector<std::string>{"n0:7000"});
  REQUIRE(mesh.run_until([&] { return agreed(mesh); }, 20s));

  int coordinators = 0;
  std::set<int> layers_held;
  for (int i = 0; i < 3; i++) {
    const discovery::Mesh& m = mesh.node(i).mesh();
    coordinators += m.is_coordinator();
    CHECK(m.members().size() == 3);
    for (const auto& v : m.members()) CHECK(v.state == wire::MemberState::alive);
    if (const auto a = m.assignment()) {
      for (int l = a->begin; l < a->end; l++) CHECK(layers_held.insert(l).second);  // held once
    }
  }
  CHECK(coordinators == 1);
  CHECK(layers_held.size() == 6);  // every layer, by nodes that can hold 3 each
  const auto& plan = mesh.node(1).mesh().plan();
  CHECK(plan.stages.size() >= 2);
  // The node actor reported its mesh after every event it handled (the simulator's hook).
  for (int i = 0; i < 3; i++) CHECK(mesh.node(i).watch.events > 10);
}

TEST_CASE("a completion entering at any node is answered as one machine answers it", "[actors]") {
  const QuietLog quiet;
  MemoryMesh mesh;
  for (int i = 0; i < 3; i++) mesh.add_node(3, i == 0 ? std::vector<std::string>{} : std::vector<std::string>{"n0:7000"});
  REQUIRE(mesh.run_until([&] { return agreed(mesh); }, 20s));

  for (int entry = 0; entry < 3; entry++) {
    const wire::GenerateRequest r = request("hello mesh " + std::to_string(entry), 12, 1000 + entry);
    const std::string route = "client " + std::to_string(entry);
    mesh.client_send(entry, route, wire::Message{0, 1, r});
    REQUIRE(mesh.run_until([&] { return answer(mesh, route).has_value(); }, 5s));
    const std::string expected = answer_alone(r, mesh.config(), mesh.tokenizer());
    CHECK(*answer(mesh, route) == expected);
    CHECK(expected.size() > r.prompt.size());  // it did generate
    CHECK(mesh.node(entry).metrics.tokens_generated.load() == 12);
    CHECK(mesh.node(entry).metrics.sessions_total.load() == 1);
  }
  uint64_t positions = 0;  // every stage ran its share of every session's positions
  for (int i = 0; i < 3; i++) positions += mesh.node(i).metrics.stage_positions.load();
  CHECK(positions > 0);
}

TEST_CASE("a stage that lost a session answers the entry's probe, and the entry re-routes within seconds", "[actors]") {
  const QuietLog quiet;
  MemoryMesh mesh;
  for (int i = 0; i < 3; i++) mesh.add_node(3, i == 0 ? std::vector<std::string>{} : std::vector<std::string>{"n0:7000"});
  REQUIRE(mesh.run_until([&] { return agreed(mesh); }, 20s));
  const auto route = mesh.node(0).mesh().route();
  REQUIRE(route.size() >= 2);
  int entry = 0;  // not the first stage's node, so that the frames between them pass the tap
  while (mesh.node(entry).context.address == route.front().address) entry++;
  const std::string entry_address = mesh.node(entry).context.address;

  // The first stage forgets the session after three decode steps, alive and in the plan (as a
  // stage restarted unnoticed would): that step reaches it as its entry's end of the session.
  std::optional<int> first_step;
  int probes = 0, moved = 0;
  mesh.tap([&](const std::string& from, const std::string& to, wire::Message& m) {
    if (const auto* step = std::get_if<wire::Step>(&m.body); step && from == entry_address) {
      if (!first_step) first_step = step->pos;
      if (step->pos == *first_step + 3) m.body = wire::SessionEnd{"forgotten"};
    }
    probes += std::holds_alternative<wire::SessionProbe>(m.body);
    if (const auto* e = std::get_if<wire::Error>(&m.body); e && e->code == wire::kMoved && to == entry_address) moved++;
  });
  const wire::GenerateRequest r = request("hello probe", 16, 77);
  mesh.client_send(entry, "client", wire::Message{0, 1, r});
  // Without the probe the session would wait kSessionStallTimeout (120 s) and fail.
  REQUIRE(mesh.run_until([&] { return answer(mesh, "client").has_value(); }, 2 * discovery::kProbeAfter + 1s));
  CHECK(*answer(mesh, "client") == answer_alone(r, mesh.config(), mesh.tokenizer()));
  CHECK(probes >= 1);
  CHECK(moved == 1);
  CHECK(mesh.node(entry).metrics.sessions_total.load() == 1);
  // The other stages kept the session (the new route is the same): only the first ran it again.
  uint64_t resumed = 0, kept = 0;
  for (std::size_t i = 0; i < 3; i++) {
    resumed += mesh.node(int(i)).metrics.sessions_resumed.load();
    kept += mesh.node(int(i)).metrics.positions_kept.load();
  }
  CHECK(resumed == route.size() - 1);
  CHECK(kept > 0);
}

// A stage gone for good mid-answer: the two others take its layers in a new plan, their ranges
// move, and they keep the keys and values of the layers they still hold; each runs only the
// layers it gained over the positions so far (or, having lost layers at its back, its layers
// again), never the whole context through every layer. Which stage goes decides which.
TEST_CASE("a stage gone for good mid-answer: the others keep the layers they still hold and fill the rest", "[actors]") {
  const QuietLog quiet;
  const int gone_stage = GENERATE(0, 1, 2);
  const wire::GenerateRequest r = request("a prompt of some length", 36, 91);
  const auto run = [&](bool crash, uint64_t& fed_at_crash, MemoryMesh& mesh) {
    for (int i = 0; i < 3; i++) mesh.add_node(3, i == 0 ? std::vector<std::string>{} : std::vector<std::string>{"n0:7000"});
    REQUIRE(mesh.run_until([&] { return agreed(mesh); }, 20s));
    const auto route = mesh.node(0).mesh().route();
    REQUIRE(route.size() == 3);  // 2 layers each: every node's 3 would leave one out
    int gone = 0, entry = 0;
    while (mesh.node(gone).context.address != route[std::size_t(gone_stage)].address) gone++;
    while (entry == gone) entry++;
    // The crash (nothing more in or out) as position 40 passes between two stages.
    mesh.tap([&, gone](const std::string&, const std::string&, wire::Message& m) {
      const auto* a = std::get_if<wire::Activations>(&m.body);
      if (!crash || fed_at_crash > 0 || !a || a->pos < 40) return;
      fed_at_crash = uint64_t(a->pos);
      mesh.node(gone).actors->stop();
    });
    const uint64_t before = mesh.layer_positions;
    mesh.client_send(entry, "client", wire::Message{0, 1, r});
    REQUIRE(mesh.run_until([&] { return answer(mesh, "client").has_value(); }, 60s));
    CHECK(*answer(mesh, "client") == answer_alone(r, mesh.config(), mesh.tokenizer()));
    return mesh.layer_positions - before;
  };
  uint64_t fed = 0;
  MemoryMesh calm_mesh, crash_mesh;
  const uint64_t calm = run(false, fed, calm_mesh);
  const uint64_t crashed = run(true, fed, crash_mesh);
  uint64_t resumed = 0, kept = 0;
  for (int i = 0; i < 3; i++) {
    resumed += crash_mesh.node(i).metrics.sessions_resumed.load();
    kept += crash_mesh.node(i).metrics.positions_kept.load();
  }
  INFO("gone: stage " << gone_stage << "; layer-positions " << calm << " undisturbed, " << crashed
                      << " with the crash at position " << fed << "; resumed " << resumed << ", kept " << kept);
  CHECK(resumed == 2);
  CHECK(kept >= fed);
  // Replaying the context would run its positions through all 6 layers again: 6 * fed more. The
  // survivors fill 2 to 4 layers' worth (4: the first stage gone, the next one runs its layers
  // again), and the position in flight runs again.
  CHECK(crashed > calm);
  CHECK(crashed - calm <= 4 * (fed + 1) + 6);
}

TEST_CASE("a node that cannot cover the model refuses a completion with the reason", "[actors]") {
  const QuietLog quiet;
  MemoryMesh mesh;
  mesh.add_node(2, {});  // holds 2 of the 6 layers, alone
  mesh.run_for(3s);
  mesh.client_send(0, "client", wire::Message{0, 1, request("hello", 4, 7)});
  mesh.run_for(10ms);
  const auto& replies = mesh.replies("client");
  REQUIRE(replies.size() == 1);
  const auto* error = std::get_if<wire::Error>(&replies[0].body);
  REQUIRE(error);
  CHECK(error->message.find("cannot serve yet") != std::string::npos);
  CHECK(mesh.node(0).metrics.sessions_total.load() == 0);
}

TEST_CASE("a stage refuses a position out of order and drops the session", "[actors]") {
  const QuietLog quiet;
  MemoryMesh mesh;
  TestNode& node = mesh.add_node(6, {}, LayerRange{0, 6});  // holds the whole model from the start
  const std::string entry = "entry:1";  // no node listens there: its frames are kept
  const uint64_t id = 0x42;
  wire::SessionStart start;
  start.entry = entry;
  start.route = {{node.context.address, LayerRange{0, 6}}};
  start.tokens = {1, 40, 41};
  start.steps = 16;
  start.sampling.seed = 5;
  auto to_stage = [&](uint64_t seq, wire::Body body) {
    caf::anon_send(node.actors->stage_actor(), actors::wire_atom::value, Origin::peer(entry),
                   wire::Message{id, seq, std::move(body)});
    mesh.run_for(1ms);
  };
  to_stage(1, start);
  REQUIRE(mesh.sent_to(entry).size() == 1);  // the prompt's token
  const auto* first = std::get_if<wire::Sampled>(&mesh.sent_to(entry)[0].body);
  REQUIRE(first);
  CHECK(first->pos == 3);

  to_stage(2, wire::Step{3, first->token});  // the position due
  REQUIRE(mesh.sent_to(entry).size() == 2);
  CHECK(std::get<wire::Sampled>(mesh.sent_to(entry)[1].body).pos == 4);

  to_stage(3, wire::Step{6, 50});  // skips 4 and 5
  REQUIRE(mesh.sent_to(entry).size() == 3);
  const auto* error = std::get_if<wire::Error>(&mesh.sent_to(entry)[2].body);
  REQUIRE(error);
  CHECK(error->message.find("position 6 arrived where 4 was due") != std::string::npos);

  to_stage(4, wire::Step{4, 50});  // the session is gone: nothing more comes of it
  CHECK(mesh.sent_to(entry).size() == 3);
}

TEST_CASE("a node's actors, the stage on a thread of its own, end when stopped and let their system go", "[actors]") {
  // The actors hold each other's handles (and the stage its own): their state goes when they
  // exit, or the actor system's destructor would wait for ever for the stage's thread.
  const QuietLog quiet;
  const ModelConfig config = tiny_config();
  const Tokenizer tokenizer(TokenizerKind::spm, synthetic_vocabulary(config.vocab_size));
  InlineTransport transport;
  SystemClock clock;
  SeededRandom random(1);
  actors::NodeMetrics metrics;
  actors::NodeContext c;
  c.name = c.member.name = "solo";
  c.address = c.member.address = "solo:7000";
  c.member.model = "tiny";
  c.member.model_layers = config.n_layers;
  c.member.pinned = LayerRange{0, config.n_layers};
  c.mesh.cost.n_layers = config.n_layers;
  c.config = &config;
  c.initial = std::make_shared<TinyStage>(config, LayerRange{0, config.n_layers});
  c.tokenizer = &tokenizer;
  c.clock = &clock;
  c.random = &random;
  c.metrics = &metrics;
  c.traffic = [] { return std::array<uint64_t, 4>{}; };
  std::optional<wire::Status> status;
  {
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", 2);
    caf::actor_system system{cfg};
    actors::NodeActors node(system, &c, &transport, actors::NodeActors::Options{});  // a detached stage
    for (int i = 0; i < 200 && !status; i++) {
      std::this_thread::sleep_for(10ms);
      transport.client_sends("client", wire::Message{0, 1, wire::StatusRequest{}});
      std::this_thread::sleep_for(10ms);
      for (const auto& m : transport.replies()) {
        if (const auto* s = std::get_if<wire::Status>(&m.body); s && s->serving) status = *s;
      }
    }
    node.stop();
    system.await_all_actors_done();
  }  // here the system's destructor waits for the stage's thread
  REQUIRE(status);
  CHECK(status->self == "solo");
  CHECK(status->model_layers == config.n_layers);
}
