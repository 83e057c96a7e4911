// A member gone bad: buggy, compromised or simply old, but holding the mesh secret. Each
// reproduction of ../shared/repro is a test here, against real `troupe node` processes started
// with --insecure so that a raw ZeroMQ socket's frames (built with the project's codec) reach
// them. Whatever the frames, every node stays up (no signal exit), the mesh keeps serving, and
// other users' answers are byte-identical to `troupe run`'s (the reference cases). Also: a stage
// restarted at once mid-answer, a model of the same shape with other weights, and a flood of
// frames that must be counted rather than logged line by line. Every case is tagged [hostile],
// as are the reproductions tested elsewhere: half-sent HTTP requests (test_http_security.cpp),
// forged beacons (test_security.cpp) and 20% loss on every link (test_hosts.cpp).
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/cases.hpp"
#include "support/http.hpp"
#include "support/nodes.hpp"
#include "support/process.hpp"
#include "support/raw_peer.hpp"
#include "troupe/net/client.hpp"
#include "troupe/protocol/wire.hpp"

using namespace troupe::test;
using namespace std::chrono_literals;
using nlohmann::json;
namespace wire = troupe::wire;

namespace {

// Raw frames reach only an --insecure mesh; every node weighs the same for the planner, so that
// plans do not depend on how busy the machine was while each node measured itself.
const std::vector<std::string> kInsecure = {"--insecure", "--throughput", "10"};

NodeSpec planned(const std::string& name) { return {name, std::nullopt, true}; }
std::vector<NodeSpec> planned_three() { return {planned("a"), planned("b"), planned("c")}; }
std::vector<NodeSpec> pinned_three() {
  return {{"a", std::pair{0, 2}}, {"b", std::pair{2, 4}}, {"c", std::pair{4, 5}}};
}

// No node exited, least of all on a signal.
void check_up(Mesh& mesh) {
  for (std::size_t i = 0; i < mesh.size(); i++) {
    BackgroundProcess& p = mesh.process(i);
    if (p.running()) continue;
    const int st = p.exit_status();
    INFO(mesh.logs());
    FAIL_CHECK("node " << mesh.name(i) << " is gone: "
                       << (WIFSIGNALED(st) ? "signal " + std::to_string(WTERMSIG(st))
                                           : "exit code " + std::to_string(WEXITSTATUS(st))));
  }
}

// `troupe generate` for reference case `c` through node `entry`, killed after `timeout_s`: an
// answer that hangs fails the test in seconds (an undisturbed one takes well under one).
ProcessResult generate(const Mesh& mesh, std::size_t entry, const json& c, int timeout_s = 20) {
  std::vector<std::string> argv = {TROUPE_BINARY};
  const std::vector<std::string> args = generate_args(mesh.address(entry), c, mesh.client_args());
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, {}, "", timeout_s);
}

// Other users' answers: every reference case, all at once, through `entry`, each byte-identical
// to the reference (what `troupe run` prints).
void check_answers(const Mesh& mesh, std::size_t entry) {
  const json cases = reference_cases();
  std::vector<std::future<ProcessResult>> runs;
  for (const auto& c : cases) runs.push_back(std::async(std::launch::async, [&, c] { return generate(mesh, entry, c); }));
  for (std::size_t i = 0; i < cases.size(); i++) {
    const ProcessResult r = runs[i].get();
    INFO((r.signal == SIGKILL ? "killed after 20 s: the answer hung\n" : ""));
    check_result(mesh, entry, cases[i], r);
  }
}

void check_answers_everywhere(Mesh& mesh) {
  for (std::size_t i = 0; i < mesh.size(); i++) check_answers(mesh, i);
  check_up(mesh);
}

// Polls `done` every 50 ms until it holds; false when it still does not after `timeout`.
bool eventually(std::chrono::milliseconds timeout, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

// A node's status, or none when it does not answer (as a hostile frame may leave it).
std::optional<wire::Status> try_status(const Mesh& mesh, std::size_t i) {
  try {
    troupe::net::MeshClient client(mesh.address(i), mesh.security(), 1s);
    client.send(wire::Message{0, 1, wire::StatusRequest{}});
    const wire::Message m = client.receive(1s);
    if (const auto* s = std::get_if<wire::Status>(&m.body)) return *s;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

bool plan_names(const wire::Status& s, const std::string& address) {
  return std::any_of(s.stages.begin(), s.stages.end(), [&](const wire::PlanStage& st) { return st.address == address; });
}

// An attack sent over and over on a thread of its own (which alone uses the attack's sockets)
// until the object goes: while other users' answers run.
class Repeatedly {
 public:
  Repeatedly(std::function<void()> attack, std::chrono::milliseconds pause)
      : thread_([this, attack = std::move(attack), pause] {
          while (!stop_) {
            attack();
            rounds_++;
            std::this_thread::sleep_for(pause);
          }
        }) {}
  ~Repeatedly() {
    stop_ = true;
    thread_.join();
  }
  int rounds() const { return rounds_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> rounds_{0};
  std::thread thread_;
};

wire::Message generate_message(const std::string& prompt, int steps) {
  wire::GenerateRequest request;
  request.prompt = prompt;
  request.steps = steps;
  request.sampling = {0, 0.9f, 42};
  return wire::Message{0, 1, request};
}

// What an attacker learns from one request of its own through `peer`: a session id of that
// entry, and how many positions the prompt took.
std::pair<uint64_t, int> own_session(RawPeer& peer) {
  peer.send(generate_message("Once upon a time", 20));
  uint64_t id = 0;
  while (const auto m = peer.receive(10s)) {
    if (id == 0) id = m->session;
    if (const auto* done = std::get_if<wire::Done>(&m->body)) return {id, done->stats.prompt_tokens};
    if (const auto* e = std::get_if<wire::Error>(&m->body)) FAIL("the attacker's own request failed: " << e->message);
  }
  FAIL("the attacker's own request got no answer");
  return {};
}

}  // namespace

// ---- the reproductions ----

TEST_CASE("forged sampled tokens out of the vocabulary for guessed session ids: the entry stays up and serves",
          "[hostile]") {
  Mesh mesh(planned_three(), kInsecure);
  REQUIRE(mesh.wait_serving());
  RawPeer attacker(mesh.address(0));
  const auto learnt = own_session(attacker);
  const uint64_t own = learnt.first;
  const int positions = learnt.second;
  // Its next request, and at once a `sampled` token 0x7fffffff for the id after its own.
  // Forged frames come from a member's connection (an address of the attacker's choosing).
  RawPeer forger(mesh.address(0), "127.0.0.1:" + std::to_string(free_port()));
  attacker.send(generate_message("Once upon a time", 20));
  forger.send(wire::Message{own + 1, 1, wire::Sampled{positions, 0x7fffffff}});
  {
    // Then the same for the ids that may come next, over and over, while others' answers run.
    Repeatedly spray([&] {
      for (uint64_t k = 1; k <= 64; k++) forger.send(wire::Message{own + k, 1, wire::Sampled{positions, 0x7fffffff}});
    }, 20ms);
    check_answers(mesh, 0);
  }
  check_answers_everywhere(mesh);
}

TEST_CASE("a forged plan of term and version 2^64-1 does not take the mesh over for good", "[hostile]") {
  Mesh mesh(planned_three(), kInsecure);
  REQUIRE(mesh.wait_serving());
  // One frame per node, "from" the real coordinator: every layer on an address where nothing runs.
  const uint64_t max = UINT64_MAX;
  const wire::PlanAnnounce forged{max, mesh.address(0), max, {{"x", "127.0.0.1:9", {0, 5}}}, ""};
  for (std::size_t i = 0; i < mesh.size(); i++) RawPeer(mesh.address(i), mesh.address(0)).send(wire::Message{0, 1, forged});
  // Within seconds every node serves again, on a plan of the mesh's own.
  for (std::size_t i = 0; i < mesh.size(); i++) {
    std::optional<wire::Status> s;
    const bool served = eventually(10s, [&] {
      s = try_status(mesh, i);
      return s && s->serving && !plan_names(*s, "127.0.0.1:9");
    });
    INFO("node " << mesh.name(i) << ": plan v" << (s ? s->plan_version : 0) << ", term " << (s ? s->term : 0) << ", "
                 << (s ? s->problem : "no status") << "\n" << mesh.logs());
    REQUIRE(served);
  }
  check_answers_everywhere(mesh);
  // And the coordinator still rules: a member lost is re-planned around (term and version move on).
  mesh.process(2).stop(SIGKILL);
  for (std::size_t i = 0; i < 2; i++) {
    const bool replanned = eventually(15s, [&] {
      const auto s = try_status(mesh, i);
      return s && s->serving && !plan_names(*s, mesh.address(2)) && !plan_names(*s, "127.0.0.1:9");
    });
    INFO("node " << mesh.name(i) << "\n" << mesh.logs());
    CHECK(replanned);
  }
  check_answers(mesh, 0);
}

TEST_CASE("forged error frames for other users' sessions, in flight and to come, kill none of them", "[hostile]") {
  Mesh mesh(planned_three(), kInsecure);
  REQUIRE(mesh.wait_serving());
  RawPeer attacker(mesh.address(0));
  const uint64_t own = own_session(attacker).first;
  RawPeer forger(mesh.address(0), "127.0.0.1:" + std::to_string(free_port()));
  auto spray = [&] {
    for (uint64_t k = 1; k <= 64; k++) {
      forger.send(wire::Message{own + k, 1, wire::Error{1, "session killed by a stranger"}});
    }
  };
  spray();  // the sessions to come...
  {
    Repeatedly again(spray, 5ms);  // ...and those in flight
    check_answers(mesh, 0);
  }
  check_answers_everywhere(mesh);
}

TEST_CASE("forged session_end frames for other users' sessions, in flight and to come, end none of them",
          "[hostile]") {
  Mesh mesh(planned_three(), kInsecure);
  REQUIRE(mesh.wait_serving());
  RawPeer asker(mesh.address(0));
  const uint64_t own = own_session(asker).first;
  std::vector<std::unique_ptr<RawPeer>> stages;  // every node may hold a stage of the route
  const std::string claimed = "127.0.0.1:" + std::to_string(free_port());
  for (std::size_t i = 0; i < mesh.size(); i++) stages.push_back(std::make_unique<RawPeer>(mesh.address(i), claimed));
  auto spray = [&] {
    for (auto& stage : stages) {
      for (uint64_t k = 1; k <= 64; k++) stage->send(wire::Message{own + k, 1, wire::SessionEnd{"stranger"}});
    }
  };
  spray();  // the sessions to come...
  {
    Repeatedly again(spray, 5ms);  // ...and those in flight
    check_answers(mesh, 0);
  }
  check_answers_everywhere(mesh);
}

namespace {

// A session_start that a stranger makes up for the stage at `stage`: the stage's own layers in a
// route whose other stages and entry are an address where nothing runs, the whole context for
// its cache, and (to a first stage) a prompt of one token.
wire::SessionStart forged_start(const wire::PlanStage& stage, int model_layers) {
  wire::SessionStart s;
  s.entry = "127.0.0.1:9";
  if (stage.layers.begin > 0) s.route.push_back({"127.0.0.1:9", {0, stage.layers.begin}});
  s.route.push_back({stage.address, stage.layers});
  if (stage.layers.end < model_layers) s.route.push_back({"127.0.0.1:9", {stage.layers.end, model_layers}});
  s.sampling = {0, 0.9f, 1};
  s.steps = 512;  // stories260K's context
  if (stage.layers.begin == 0) s.tokens = {1};
  return s;
}

}  // namespace

TEST_CASE("64 forged session_starts with full-context caches leave every stage serving others", "[hostile]") {
  Mesh mesh(planned_three(), kInsecure);
  REQUIRE(mesh.wait_serving());
  const wire::Status s = status_of(mesh.address(0), mesh.security());
  REQUIRE(s.stages.size() == 3);
  std::vector<std::unique_ptr<RawPeer>> peers;
  for (std::size_t n = 0; n < s.stages.size(); n++) {
    peers.push_back(std::make_unique<RawPeer>(s.stages[n].address, "127.0.0.1:9"));  // the forged entry
    for (uint64_t k = 0; k < 64; k++) {
      peers.back()->send(wire::Message{0xdead000000000000 + (n << 8) + k, 1, forged_start(s.stages[n], s.model_layers)});
    }
  }
  std::this_thread::sleep_for(500ms);  // the stages have taken them (or not)
  check_answers_everywhere(mesh);
}

TEST_CASE("a member declared dead in a later instance by a stranger is counted alive again", "[hostile]") {
  // Pinned stages: the mesh serves only while every node counts the victim (b) alive.
  Mesh mesh(pinned_three(), kInsecure);
  REQUIRE(mesh.wait_serving());
  const std::string victim = mesh.address(1);
  const std::vector<wire::MemberUpdate> table = member_table(mesh.address(0));
  const auto it = std::find_if(table.begin(), table.end(), [&](const auto& u) { return u.info.address == victim; });
  REQUIRE(it != table.end());
  wire::MemberUpdate lie = *it;
  lie.info.instance++;
  lie.state = wire::MemberState::dead;
  lie.incarnation = 0;
  const std::string stranger = "127.0.0.1:" + std::to_string(free_port());
  for (std::size_t i = 0; i < mesh.size(); i++) RawPeer(mesh.address(i), stranger).send(gossip_frame(stranger, {lie}));
  std::this_thread::sleep_for(300ms);  // the lie has arrived
  for (std::size_t i = 0; i < mesh.size(); i++) {
    std::optional<wire::Status> s;
    const bool alive = eventually(10s, [&] {
      s = try_status(mesh, i);
      if (!s || !s->serving) return false;
      return std::any_of(s->members.begin(), s->members.end(),
                         [&](const wire::Member& m) { return m.address == victim && m.state == "alive"; });
    });
    INFO("node " << mesh.name(i) << ": " << (s ? (s->serving ? "serving" : s->problem) : "no status") << "\n"
                 << mesh.logs());
    REQUIRE(alive);
  }
  check_answers_everywhere(mesh);
}

namespace {

// `count` members nobody runs, at addresses where nothing listens (127.66.X.Y:9), of this mesh's
// model (copied from `like`, as a stranger copies it from a member table), each claiming
// `throughput` GB/s and a terabyte of memory.
std::vector<wire::MemberUpdate> ghosts(std::size_t count, double throughput, const wire::MemberInfo& like) {
  std::vector<wire::MemberUpdate> out;
  const auto instance = uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
  for (std::size_t i = 0; i < count; i++) {
    wire::MemberInfo g;
    g.name = "ghost" + std::to_string(i);
    g.address = "127.66." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + ":9";
    g.instance = instance;
    g.model = like.model;
    g.model_layers = like.model_layers;
    g.mem_budget = uint64_t(1) << 40;
    g.throughput = throughput;
    g.cores = 64;
    g.arch = "x86_64";
    out.push_back({g, wire::MemberState::alive, 0, {}});
  }
  return out;
}

// Asserts the ghosts alive to every node of `mesh` (in gossip of at most wire::kMaxPeers
// updates), each time at a higher incarnation, as a member refuting a suspicion does.
std::function<void()> assert_alive(Mesh& mesh, std::vector<wire::MemberUpdate> members) {
  auto peers = std::make_shared<std::vector<std::unique_ptr<RawPeer>>>();
  const std::string from = "127.0.0.1:" + std::to_string(free_port());
  for (std::size_t i = 0; i < mesh.size(); i++) peers->push_back(std::make_unique<RawPeer>(mesh.address(i), from));
  return [peers, from, members = std::move(members)]() mutable {
    for (auto& m : members) m.incarnation++;
    for (std::size_t at = 0; at < members.size(); at += wire::kMaxPeers) {
      const auto end = members.begin() + long(std::min(members.size(), at + wire::kMaxPeers));
      const wire::Message frame = gossip_frame(from, {members.begin() + long(at), end});
      for (auto& p : *peers) p->send(frame);
    }
  };
}

bool plans_a_ghost(const wire::Status& s) {
  return std::any_of(s.stages.begin(), s.stages.end(),
                     [](const wire::PlanStage& st) { return st.address.rfind("127.66.", 0) == 0; });
}

}  // namespace

TEST_CASE("5 invented members of high throughput get no layers, and the mesh keeps serving", "[hostile]") {
  Mesh mesh(planned_three(), kInsecure);
  REQUIRE(mesh.wait_serving());
  const auto table = member_table(mesh.address(0));
  {
    Repeatedly ghosting(assert_alive(mesh, ghosts(5, 1000, table.front().info)), 500ms);
    std::this_thread::sleep_for(1500ms);  // the ghosts are known everywhere
    std::string ghost_planned;  // watched for a second and a half, on every node
    for (const auto until = std::chrono::steady_clock::now() + 1500ms; std::chrono::steady_clock::now() < until;) {
      for (std::size_t i = 0; i < mesh.size(); i++) {
        const auto s = try_status(mesh, i);
        if (s && plans_a_ghost(*s)) ghost_planned = mesh.name(i) + "'s plan v" + std::to_string(s->plan_version);
      }
      std::this_thread::sleep_for(50ms);
    }
    INFO(ghost_planned << " has a stage on a ghost");
    CHECK(ghost_planned.empty());
    check_answers(mesh, 0);
  }
  check_answers_everywhere(mesh);
}

TEST_CASE("2000 invented members: a real node can still join, be planned and serve", "[hostile]") {
  // a and b pin 0:4; layers 4:5 wait for a node to plan them on.
  Mesh mesh({{"a", std::pair{0, 2}}, {"b", std::pair{2, 4}}}, kInsecure);
  REQUIRE(eventually(15s, [&] {
    const auto s = try_status(mesh, 0);
    return s && s->members.size() == 2;
  }));
  const auto table = member_table(mesh.address(0));
  auto flood = assert_alive(mesh, ghosts(2000, 1, table.front().info));
  for (int i = 0; i < 3; i++) {
    flood();
    std::this_thread::sleep_for(300ms);
  }
  const std::size_t d = mesh.add(planned("d"), 0, kInsecure);
  std::optional<wire::Status> s;
  const bool planned_d = eventually(20s, [&] {
    s = try_status(mesh, 0);
    return s && s->serving && plan_names(*s, mesh.address(d));
  });
  INFO("a: " << (s ? (s->serving ? "serving" : s->problem) : "no status") << "\n" << mesh.logs());
  REQUIRE(planned_d);
  CHECK_FALSE(plans_a_ghost(*s));
  REQUIRE(mesh.wait_serving());
  check_answers(mesh, 0);
  check_answers(mesh, d);
  check_up(mesh);
}

TEST_CASE("an impostor member that answers tokens out of the vocabulary crashes no node, and once gone the mesh "
          "serves as before", "[hostile]") {
  Mesh mesh(planned_three(), kInsecure);
  REQUIRE(mesh.wait_serving());
  {
    // A member that joins claiming 100 times anyone's throughput, is planned (or not: the mesh
    // may refuse it), and answers every session it gets with token 0x7fffffff.
    ImpostorMember impostor(mesh.address(0), 0x7fffffff);
    eventually(10s, [&] { return impostor.layers().has_value(); });
    // Users' answers meanwhile: each is the reference or a clear failure, never a crash or a hang.
    const json cases = reference_cases();
    for (std::size_t i = 0; i < mesh.size(); i++) {
      const ProcessResult r = generate(mesh, i, cases[1]);
      INFO("through " << mesh.name(i) << " (the impostor holds " << (impostor.layers() ? "layers" : "no layer")
                      << ", " << impostor.sessions_seen() << " sessions seen): exit " << r.exit_code << ", signal "
                      << r.signal << "\n" << r.err);
      CHECK(r.signal == 0);  // 0: not killed after 20 s
      if (r.exit_code == 0) CHECK(r.out == cases[1]["expected_stdout"].get<std::string>());
      CHECK((r.exit_code == 0 || r.exit_code == 1));
    }
    check_up(mesh);
  }
  // The impostor is gone (no process behind its address): within seconds no plan holds it.
  for (std::size_t i = 0; i < mesh.size(); i++) {
    std::optional<wire::Status> s;
    const bool replanned = eventually(20s, [&] {
      s = try_status(mesh, i);
      return s && s->serving && std::none_of(s->stages.begin(), s->stages.end(), [&](const wire::PlanStage& st) {
               return st.node == "impostor";
             });
    });
    INFO("node " << mesh.name(i) << ": " << (s ? (s->serving ? "serving" : s->problem) : "no status") << "\n"
                 << mesh.logs());
    REQUIRE(replanned);
  }
  check_answers_everywhere(mesh);
}

// ---- a fast restart, another model's weights, a flood ----

TEST_CASE("a stage killed with -9 and started again at once, mid-answer: the answer completes byte-identically "
          "within 3 s of the restart", "[hostile][restart]") {
  // The middle stage, then the last (which samples): the stages around it keep the session.
  const std::size_t killed = GENERATE(1, 2);
  // Pinned, as a service manager restarts a node with its flags: the new process takes the same
  // layers at the same address, and nothing else can.
  Mesh mesh(pinned_three());
  REQUIRE(mesh.wait_serving());
  const json c = reference_cases()[1];  // greedy, "Once upon a time"
  const std::string expected = c["expected_stdout"].get<std::string>();
  troupe::net::MeshClient client(mesh.address(0), mesh.security());
  wire::GenerateRequest request;
  request.prompt = c["prompt"].get<std::string>();
  request.steps = c["steps"].get<int>();
  request.sampling = {0, 0.9f, 1};
  client.send(wire::Message{0, 1, request});
  std::string text;
  while (text.size() <= request.prompt.size()) {  // the echo, then the first piece of the answer
    const wire::Message m = client.receive(10s);
    REQUIRE(std::holds_alternative<wire::Text>(m.body));
    text += std::get<wire::Text>(m.body).text;
  }
  mesh.process(killed).stop(SIGKILL);
  mesh.restart(killed, 0);
  // The 3 s count from when the new process listens, so that a slow start on a busy machine is
  // not counted (frames to the client queue meanwhile).
  REQUIRE(mesh.process(killed).wait_log("listening on", 20s));
  const auto restarted = std::chrono::steady_clock::now();
  const std::size_t before = text.size();
  std::string ended_by;
  int positions = 0;
  try {
    while (ended_by.empty()) {
      const wire::Message m = client.receive(15s);
      if (const auto* t = std::get_if<wire::Text>(&m.body)) text += t->text;
      if (const auto* d = std::get_if<wire::Done>(&m.body)) {
        ended_by = "done";
        positions = d->stats.positions;
      }
      if (const auto* e = std::get_if<wire::Error>(&m.body)) ended_by = "error: " + e->message;
    }
  } catch (const std::exception& e) {
    ended_by = e.what();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - restarted).count();
  INFO("ended by " << ended_by << " " << seconds << " s after the restart; " << before
                   << " bytes had come before the kill\n" << mesh.logs());
  REQUIRE(before + 1 < expected.size());  // the kill came mid-answer...
  REQUIRE(ended_by == "done");
  CHECK(text + "\n" == expected);
  CHECK(seconds < 3.0);
  check_up(mesh);
  // ...before the answer's last position: the new instance (the only one that can hold its
  // layers) ran some of it.
  CHECK(status_of(mesh.address(killed), mesh.security()).counters.stage_positions > 0);
  // The other two kept the session: they ran each position once, but at each re-route the last
  // one fed (run again: its sample was due), where a replay would have run them all twice. (A
  // stage that hears of the restart after the entry re-routed re-routes the session once more,
  // and keeps it again.)
  for (std::size_t i = 0; i < 3; i++) {
    if (i == killed) continue;
    const wire::NodeCounters c = status_of(mesh.address(i), mesh.security()).counters;
    INFO("node " << i << ": " << c.stage_positions << " positions run of " << positions << ", "
                 << c.sessions_resumed << " resumed");
    CHECK(c.sessions_resumed >= 1);
    CHECK(c.positions_kept > 0);
    CHECK(c.stage_positions <= uint64_t(positions) + c.sessions_resumed);
  }
}

TEST_CASE("a node whose model has the same shape and one other weight is refused, with a line naming the file",
          "[hostile][model]") {
  const TempDir dir;
  // stories260K with one float of its weights (in the middle of the file) changed.
  std::string bytes = read_all(stories_model());
  const std::size_t at = bytes.size() / 2 & ~std::size_t(3);
  float weight = 0;
  std::memcpy(&weight, bytes.data() + at, sizeof weight);
  weight += 0.5f;
  std::memcpy(bytes.data() + at, &weight, sizeof weight);
  const std::string other = dir / "stories260K-other.bin";
  write_all(other, bytes);

  Mesh mesh({{"a", std::pair{0, 5}}});
  REQUIRE(mesh.wait_serving());
  const std::string address = "127.0.0.1:" + std::to_string(free_port());
  std::vector<std::string> argv = node_argv({"odd", std::pair{0, 5}}, address, other);
  argv.insert(argv.end(), {"--tokenizer", stories_tokenizer(), "--join", mesh.address(0)});
  BackgroundProcess odd(argv, dir / "odd.log");
  const std::string refused = "member odd (" + address + ") runs another model (";
  const bool logged = mesh.process(0).wait_log(refused, 15s);
  INFO(mesh.logs() << "--- odd\n" << odd.log());
  REQUIRE(logged);
  const std::string log = mesh.process(0).log();
  const std::size_t line = log.find(refused);
  CHECK(log.substr(line, log.find('\n', line) - line).find("this node: ") != std::string::npos);
  CHECK(log.substr(line, log.find('\n', line) - line).find(" from " + stories_model() + ")") != std::string::npos);
  // The odd node names its own file when it refuses the mesh's.
  CHECK(odd.wait_log(" from " + other + ")", 5s));
  const wire::Status s = status_of(mesh.address(0));
  REQUIRE(s.members.size() == 1);
  CHECK(s.members[0].name == "a");
  check_case(mesh, 0, reference_cases()[1]);
}

namespace {

std::size_t lines_of(const std::string& text) { return std::size_t(std::count(text.begin(), text.end(), '\n')); }

// The frames a flood sends, none of which a node can use: garbage, another protocol version,
// session frames for sessions that do not exist, a client's frame sent to a node.
std::vector<std::vector<uint8_t>> useless_frames() {
  std::vector<uint8_t> noise(100);
  for (std::size_t i = 0; i < noise.size(); i++) noise[i] = uint8_t(i * 7919 % 251);
  std::vector<uint8_t> other_version = wire::encode(wire::Message{0, 1, wire::StatusRequest{}});
  other_version[6] = 99;  // [array, uint32 magic (5 bytes), version]
  return {noise, other_version, wire::encode(wire::Message{0xdead, 1, wire::Sampled{3, 4}}),
          wire::encode(wire::Message{0xbeef, 1, wire::Step{3, 4}}),
          wire::encode(wire::Message{0xbeef, 2, wire::Activations{}}),
          wire::encode(wire::Message{0, 3, wire::Text{"stray"}})};
}

// The value of a Prometheus metric line `name VALUE` (-1 when absent).
double metric_value(const std::string& metrics, const std::string& name) {
  const std::size_t at = metrics.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(metrics.substr(at + name.size() + 2));
}

}  // namespace

TEST_CASE("a flood of garbage and forged frames is counted, and logged at most a few lines a second", "[hostile][flood]") {
  const int http = free_port();
  Mesh mesh({{"a", std::pair{0, 5}}}, {"--insecure", "--http", "127.0.0.1:" + std::to_string(http)});
  REQUIRE(mesh.wait_serving());
  REQUIRE(wait_healthy(http));
  const std::size_t lines_before = lines_of(mesh.process(0).log());
  // Two peers, for two seconds, two frames a millisecond.
  const auto frames = useless_frames();
  RawPeer garbler(mesh.address(0)), forger(mesh.address(0));
  uint64_t sent = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; std::chrono::steady_clock::now() - t0 < 2s; i++) {
    garbler.send_bytes(frames[i % 2]);
    forger.send_bytes(frames[2 + i % (frames.size() - 2)]);
    sent += 2;
    std::this_thread::sleep_for(1ms);
  }
  json counters;
  const bool counted = eventually(5s, [&] {
    const ProcessResult r = run_troupe({"status", "--peer", mesh.address(0), "--insecure", "--json"});
    counters = r.exit_code == 0 ? json::parse(r.out)["counters"] : json();
    return counters.contains("frames_dropped") && counters["frames_dropped"].get<uint64_t>() >= sent;
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::size_t logged = lines_of(mesh.process(0).log()) - lines_before;
  INFO(sent << " frames sent; " << logged << " lines logged in " << seconds << " s; counters " << counters.dump());
  CHECK(logged <= std::size_t(10 * seconds));
  CHECK(counted);
  const HttpResponse metrics = http_request(http, "GET", "/metrics");
  REQUIRE(metrics.status == 200);
  CHECK(metric_value(metrics.body, "troupe_frames_dropped_total") >= double(sent));
  check_case(mesh, 0, reference_cases()[1]);
  check_up(mesh);
}
