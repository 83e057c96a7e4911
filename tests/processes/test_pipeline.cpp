// The mesh end to end: real `troupe node` processes on loopback, real sockets, stories260K split
// into stages. Whatever the layout and whichever node a client enters through, `troupe generate`
// prints exactly what `troupe run` (and llama2.c) prints.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <zmq.hpp>

#include "support/cases.hpp"
#include "support/nodes.hpp"
#include "support/process.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/model.hpp"
#include "troupe/model/model_identity.hpp"
#include "troupe/net/client.hpp"
#include "troupe/net/zmq_transport.hpp"
#include "troupe/node/node.hpp"
#include "troupe/protocol/wire.hpp"

using namespace troupe::test;
using nlohmann::json;

namespace {

std::vector<NodeSpec> layout(const std::vector<std::pair<int, int>>& ranges) {
  std::vector<NodeSpec> nodes;
  for (std::size_t i = 0; i < ranges.size(); i++) {
    std::string name = "s";  // appended: GCC 12 warns falsely (-Wrestrict) on "s" + std::string
    name += std::to_string(i);
    nodes.push_back({name, ranges[i]});
  }
  return nodes;
}

// `troupe generate`'s client, in-process so that a test knows when its session is in flight:
// node `frozen` is stopped (SIGSTOP) first, then a greedy request enters through `entry`, which
// echoes the prompt at once; the frozen node keeps the session waiting.
std::unique_ptr<troupe::net::MeshClient> session_in_flight(Mesh& mesh, std::size_t entry, std::size_t frozen,
                                                      const std::string& prompt) {
  auto client = std::make_unique<troupe::net::MeshClient>(mesh.address(entry), mesh.security());
  mesh.process(frozen).signal(SIGSTOP);
  troupe::wire::GenerateRequest request;
  request.prompt = prompt;
  request.sampling = {0, 0.9f, 1};
  request.steps = 200;
  client->send(troupe::wire::Message{0, 1, request});
  const auto echo = client->receive(std::chrono::seconds(10));
  REQUIRE(std::holds_alternative<troupe::wire::Text>(echo.body));
  CHECK(std::get<troupe::wire::Text>(echo.body).text == prompt);
  return client;
}

}  // namespace

TEST_CASE("every layout reproduces the reference cases through every node", "[pipeline]") {
  const json cases = reference_cases();
  const std::vector<std::vector<std::pair<int, int>>> layouts = {
      {{0, 5}},
      {{0, 2}, {2, 5}},
      {{0, 1}, {1, 3}, {3, 5}},
      {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}},
  };
  for (const auto& ranges : layouts) {
    std::vector<NodeSpec> nodes = layout(ranges);
    // The stages listed out of order, and one more node that holds no stage: clients may enter
    // through it too.
    std::reverse(nodes.begin(), nodes.end());
    nodes.push_back({"entry", std::nullopt});
    Mesh mesh(nodes);
    INFO(ranges.size() << " stages");
    REQUIRE(mesh.wait_serving());
    // Every case through every node, all at once: each stage interleaves sessions of different
    // entries, lengths and samplers, so one that picked up another's cache, sampler or route
    // would show. (Also the fastest way: the sessions keep both cores busy.) Every stage holds
    // all of them, within a node's session limit.
    REQUIRE(mesh.size() * cases.size() <= std::size_t(troupe::wire::kMaxSessions));
    std::vector<std::future<ProcessResult>> runs;
    for (std::size_t n = 0; n < mesh.size(); n++) {
      for (std::size_t i = 0; i < cases.size(); i++) {
        const std::vector<std::string> args = generate_args(mesh.address(n), cases[i]);
        runs.push_back(std::async(std::launch::async, [args] { return run_troupe(args); }));
      }
    }
    for (std::size_t n = 0; n < mesh.size(); n++) {
      for (std::size_t i = 0; i < cases.size(); i++) {
        check_result(mesh, n, cases[i], runs[n * cases.size() + i].get());
      }
    }
  }
}

TEST_CASE("eight concurrent sessions give the texts of one at a time", "[pipeline]") {
  const json cases = reference_cases();
  Mesh mesh(layout({{0, 2}, {2, 5}}));
  REQUIRE(mesh.wait_serving());
  std::vector<std::future<ProcessResult>> runs;
  for (int i = 0; i < 8; i++) {
    const json c = cases[i % cases.size()];
    const std::string peer = mesh.address(i % 2);
    runs.push_back(std::async(std::launch::async, [c, peer] { return run_troupe(generate_args(peer, c)); }));
  }
  for (int i = 0; i < 8; i++) {
    const ProcessResult r = runs[i].get();
    INFO("session " << i << "\nstderr: " << r.err << "\nlogs:\n" << mesh.logs());
    REQUIRE(r.exit_code == 0);
    CHECK(r.out == cases[i % cases.size()]["expected_stdout"].get<std::string>());
  }
}

TEST_CASE("sessions batched at every stage, greedy and seeded, some left mid-answer, give the texts of one at a time",
          "[pipeline][batch]") {
  using Ranges = std::vector<std::pair<int, int>>;
  const Ranges ranges = GENERATE(Ranges{{0, 5}}, Ranges{{0, 2}, {2, 5}}, Ranges{{0, 2}, {2, 4}, {4, 5}});
  INFO(ranges.size() << " stages");
  const json cases = reference_cases();
  Mesh mesh(layout(ranges));
  REQUIRE(mesh.wait_serving());
  // Two clients that go away mid-answer, while the others run.
  std::vector<std::unique_ptr<troupe::net::MeshClient>> leaving;
  for (int i = 0; i < 2; i++) {
    auto client = std::make_unique<troupe::net::MeshClient>(mesh.address(0), mesh.security());
    troupe::wire::GenerateRequest request;
    request.prompt = "Once upon a time";
    request.sampling = {1.0f, 0.9f, uint64_t(i + 1)};
    request.steps = 512;
    client->send(troupe::wire::Message{0, 1, request});
    REQUIRE(std::holds_alternative<troupe::wire::Text>(client->receive(std::chrono::seconds(10)).body));
    leaving.push_back(std::move(client));
  }
  constexpr int kSessions = 12;  // each reference case twice: mixed prompts, lengths and samplers
  std::vector<std::future<ProcessResult>> runs;
  for (int i = 0; i < kSessions; i++) {
    const json c = cases[i % cases.size()];
    const std::string peer = mesh.address(std::size_t(i) % mesh.size());
    runs.push_back(std::async(std::launch::async, [c, peer] { return run_troupe(generate_args(peer, c)); }));
  }
  leaving.clear();
  for (int i = 0; i < kSessions; i++) check_result(mesh, std::size_t(i) % mesh.size(), cases[i % cases.size()], runs[i].get());
  // Every stage ran sessions side by side: more sessions than passes, summed.
  for (std::size_t n = 0; n < mesh.size(); n++) {
    const troupe::wire::NodeCounters c = status_of(mesh.address(n)).counters;
    INFO("node " << n << ": " << c.stage_passes << " passes, " << c.stage_pass_sessions << " sessions in them, "
                 << c.stage_positions << " positions");
    CHECK(c.stage_passes > 0);
    CHECK(c.stage_pass_sessions > c.stage_passes);
  }
}

TEST_CASE("f16 activations travel at half the size and still tell a story", "[pipeline]") {
  Mesh mesh(layout({{0, 2}, {2, 5}}), {"--activations", "f16"});
  REQUIRE(mesh.wait_serving());
  const auto r = run_troupe({"generate", "--peer", mesh.address(0), "-t", "0", "-n", "40", "-i",
                             "Once upon a time"});
  INFO(r.err << mesh.logs());
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.rfind("Once upon a time", 0) == 0);
  CHECK(r.out.size() > std::string("Once upon a time\n").size());
}

TEST_CASE("status shows members, the plan, and what is missing", "[pipeline]") {
  // Layers 2:3 are held by nobody: the mesh says so and does not serve.
  Mesh mesh({{"a", std::pair{0, 2}}, {"b", std::pair{3, 5}}, {"e", std::nullopt}});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  json j;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto r = run_troupe({"status", "--peer", mesh.address(2), "--json"});
    if (r.exit_code == 0) {
      j = json::parse(r.out);
      if (j["members"].size() == 3 && j["plan"]["version"].get<int>() >= 1) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  INFO(j.dump(2) << mesh.logs());
  REQUIRE(j["members"].size() == 3);
  CHECK(j["term"] >= 1);
  CHECK(j["coordinator"].is_string());
  CHECK(j["serving"] == false);
  CHECK(j["problem"].get<std::string>().find("2:3") != std::string::npos);
  CHECK(j["plan"]["version"].get<int>() >= 1);
  REQUIRE(j["plan"]["stages"].size() == 2);
  CHECK(j["plan"]["stages"][0]["node"] == "a");
  CHECK(j["plan"]["stages"][0]["layers"] == json::array({0, 2}));
  CHECK(j["plan"]["stages"][1]["layers"] == json::array({3, 5}));
  for (const auto& m : j["members"]) {
    CHECK(m["state"] == "alive");
    if (m["name"] == "e") CHECK(m["layers"].is_null());
    if (m["name"] == "b") CHECK(m["layers"] == json::array({3, 5}));
  }

  const auto r = run_troupe({"generate", "--peer", mesh.address(2), "-i", "Once"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("2:3") != std::string::npos);
  CHECK(r.out.empty());
  const auto text = run_troupe({"status", "--peer", mesh.address(0)});
  CHECK(text.exit_code == 0);
  CHECK(text.out.find("not serving") != std::string::npos);
}

namespace {

// A raw TCP connection to `port` on loopback.
int tcp_to(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

// Gossip that must not disturb the mesh: a member of another model, a sender whose address is
// not one, and members that cannot exist.
std::vector<std::vector<uint8_t>> bad_gossip() {
  namespace wire = troupe::wire;
  const troupe::Model model = troupe::load_model(stories_model());
  wire::MemberInfo mallory;
  mallory.name = "mallory";
  mallory.address = "127.0.0.1:1";
  mallory.model = "another model";
  mallory.model_layers = 5;
  mallory.layers = troupe::LayerRange{0, 5};
  wire::Gossip other_model;
  other_model.kind = wire::Gossip::Kind::sync_reply;
  other_model.from = "127.0.0.1:1";
  other_model.updates = {{mallory, wire::MemberState::alive, 1, {}}};
  wire::Gossip bad_address = other_model;
  bad_address.kind = wire::Gossip::Kind::ping;
  bad_address.from = "not an address";
  wire::Gossip bogus = other_model;
  wire::MemberInfo x = mallory, y = mallory;
  x.model = y.model = troupe::model_identity(model);
  x.address = "127.0.0.1:99999";
  y.address = "%%%:1";
  bogus.updates = {{x, wire::MemberState::alive, 1, {}}, {y, wire::MemberState::alive, 1, {}}};
  return {wire::encode(wire::Message{0, 5, other_model}), wire::encode(wire::Message{0, 6, bad_address}),
          wire::encode(wire::Message{0, 7, bogus})};
}

}  // namespace

TEST_CASE("garbage, oversized frames, wrong versions and unknown sessions are dropped", "[pipeline]") {
  namespace wire = troupe::wire;
  // Raw frames reach the codec only without CURVE (test_security.cpp: with it, not at all).
  Mesh mesh(layout({{0, 5}}), {"--insecure"});
  REQUIRE(mesh.wait_serving());
  const std::string address = mesh.address(0);
  const int port = std::stoi(address.substr(address.rfind(':') + 1));

  // Raw TCP: garbage, and a connection that sends half a greeting and then nothing.
  const int garbage = tcp_to(port);
  std::string noise(4000, '\0');
  for (std::size_t i = 0; i < noise.size(); i++) noise[i] = static_cast<char>(i * 7919 % 251);
  CHECK(write(garbage, noise.data(), noise.size()) > 0);
  close(garbage);
  const int half_open = tcp_to(port);
  CHECK(write(half_open, "\xff\0\0\0\0\0\0\0\x01\x7f", 10) == 10);

  // ZeroMQ frames that are not what they should be, each from a connection of its own: a node
  // logs at most a line a second for each sender (a flood is a line a second, not a line a
  // frame). Frames only members send come from connections that present a member's address.
  zmq::context_t context;
  std::vector<zmq::socket_t> senders;
  int invented = 0;
  auto connection = [&](bool as_member) -> zmq::socket_t& {
    zmq::socket_t& d = senders.emplace_back(context, zmq::socket_type::dealer);
    d.set(zmq::sockopt::linger, 0);
    if (as_member) {
      const std::string member = "127.0.0.1:" + std::to_string(20000 + invented++);
      d.set(zmq::sockopt::routing_id, troupe::net::peer_routing_id(member, troupe::Transport::Lane::control));
    }
    d.connect("tcp://" + address);
    return d;
  };
  connection(false).send(zmq::buffer(noise.substr(0, 100)));
  std::vector<uint8_t> wrong_version = wire::encode(wire::Message{0, 1, wire::StatusRequest{}});
  REQUIRE(wrong_version[6] == wire::kProtocolVersion);  // [array, uint32 magic (5 bytes), version]
  wrong_version[6] = 99;
  connection(false).send(zmq::buffer(wrong_version));
  connection(true).send(zmq::buffer(wire::encode(wire::Message{0xdead, 1, wire::Sampled{3, 4}})));
  connection(true).send(zmq::buffer(wire::encode(wire::Message{0xbeef, 1, wire::Step{3, 4}})));
  // The end names another session: over another connection it could overtake the step, and a
  // step for a session ended is dropped quietly (a late copy).
  connection(true).send(zmq::buffer(wire::encode(wire::Message{0xcafe, 2, wire::SessionEnd{"x"}})));
  connection(true).send(zmq::buffer(wire::encode(wire::Message{0, 3, wire::Text{"stray"}})));
  zmq::socket_t& two_parts = connection(false);
  two_parts.send(zmq::buffer(std::string("two")), zmq::send_flags::sndmore);
  two_parts.send(zmq::buffer(std::string("parts")));
  std::vector<uint8_t> truncated = wire::encode(wire::Message{0, 4, wire::Gossip{}});
  truncated.resize(truncated.size() / 2);
  connection(true).send(zmq::buffer(truncated));
  for (const auto& frame : bad_gossip()) connection(true).send(zmq::buffer(frame));
  // Member frames from a client connection: dropped before anything reads them.
  connection(false).send(zmq::buffer(wire::encode(wire::Message{0xfeed, 1, wire::Sampled{3, 4}})));
  // A frame over the limit: ZeroMQ drops the connection that sends it.
  zmq::socket_t big_sender(context, zmq::socket_type::dealer);
  big_sender.set(zmq::sockopt::linger, 0);
  big_sender.connect("tcp://" + address);
  big_sender.send(zmq::message_t(wire::kMaxFrameBytes + 4096), zmq::send_flags::none);

  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // The node still answers, and still generates the right text.
  const auto s = status_of(address, mesh.security());
  CHECK(s.serving);
  const json c = reference_cases()[1];
  check_case(mesh, 0, c);
  close(half_open);

  const std::string log = mesh.logs();
  INFO(log);
  CHECK(log.find("protocol version 99") != std::string::npos);
  CHECK(log.find("malformed frame") != std::string::npos);
  CHECK(log.find("sampled for session dead") != std::string::npos);
  CHECK(log.find("session beef, which this stage does not hold") != std::string::npos);
  CHECK(log.find("single-part") != std::string::npos);
  CHECK(log.find("a text frame, which nodes send and never take") != std::string::npos);
  CHECK(log.find("a client sent sampled, which only members send") != std::string::npos);
  CHECK(log.find("runs another model") != std::string::npos);
  CHECK(log.find("not a HOST:PORT") != std::string::npos);
  CHECK(mesh.process(0).running());
}

TEST_CASE("a stage killed mid-session ends the session with an error naming it", "[pipeline]") {
  Mesh mesh(layout({{0, 1}, {1, 3}, {3, 5}}));
  REQUIRE(mesh.wait_serving());
  // The middle stage dies mid-session. All stages are pinned, so no plan can take over its
  // layers: the session must end.
  auto client = session_in_flight(mesh, 0, 1, "Once upon a time");
  const auto t0 = std::chrono::steady_clock::now();
  mesh.process(1).stop(SIGKILL);
  troupe::wire::Message end;
  do {
    end = client->receive(std::chrono::seconds(20));
  } while (std::holds_alternative<troupe::wire::Text>(end.body));
  INFO(mesh.logs());
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  REQUIRE(std::holds_alternative<troupe::wire::Error>(end.body));
  const auto& error = std::get<troupe::wire::Error>(end.body);
  CHECK(error.code == 1);
  CHECK(error.message.find("peer s1") != std::string::npos);
  CHECK(error.message.find("1:3") != std::string::npos);

  // The survivors go on serving status and say what is missing.
  const auto s = status_of(mesh.address(0));
  CHECK_FALSE(s.serving);
  CHECK(s.problem.find("1:3") != std::string::npos);
  const auto again = run_troupe({"generate", "--peer", mesh.address(2), "-i", "Once"});
  CHECK(again.exit_code == 1);
  CHECK(again.err.find("1:3") != std::string::npos);
}

TEST_CASE("a client whose entry node dies gets an error, not a hang", "[pipeline]") {
  Mesh mesh({{"s0", std::pair{0, 5}}, {"e", std::nullopt}});
  REQUIRE(mesh.wait_serving());
  // The entry dies while the stopped stage keeps its session waiting.
  auto client = session_in_flight(mesh, 1, 0, "Once");
  mesh.process(1).stop(SIGKILL);
  const auto t0 = std::chrono::steady_clock::now();
  std::string error;
  try {
    while (true) client->receive(std::chrono::seconds(20));
  } catch (const troupe::RuntimeFailure& e) {
    error = e.what();
  }
  mesh.process(0).signal(SIGCONT);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  CHECK(error.find("lost the connection to peer " + mesh.address(1)) != std::string::npos);
}

TEST_CASE("mesh commands reject bad flags with exit code 2", "[pipeline]") {
  const std::string model = stories_model();
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"node", "--listen", "127.0.0.1", "--model", model},
           {"node", "--listen", "127.0.0.1:0", "--model", model},
           {"node", "--listen", "127.0.0.1:7", "--model", model, "--layers", "3:2"},
           {"node", "--listen", "127.0.0.1:7", "--model", model, "--layers", "0:9"},
           {"node", "--listen", "127.0.0.1:7", "--model", model, "--layers", "x"},
           {"node", "--listen", "127.0.0.1:7", "--model", model, "--http", "nowhere"},
           {"node", "--listen", "127.0.0.1:7", "--model", model, "--http", "8080", "--chat-template", "jinja"},
           {"node", "--listen", "127.0.0.1:7", "--model", model, "--mem-budget", "lots"},
           {"node", "--listen", "127.0.0.1:7", "--model", "/nonexistent/model.bin"},
           {"generate", "--peer", "nowhere", "-i", "x"},
           {"generate", "--peer", "127.0.0.1:1"},
           {"status"},
       }) {
    const auto r = run_troupe(args);
    std::string line;
    for (const auto& a : args) line += a + " ";
    INFO(line << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.signal == 0);
    CHECK(r.err.rfind("troupe: ", 0) == 0);
  }
}

TEST_CASE("chat streams each reply through the mesh", "[pipeline][chat]") {
  Mesh mesh({{"s0", std::pair{0, 5}}, {"e", std::nullopt}});
  REQUIRE(mesh.wait_serving());
  const std::vector<std::string> args = {"chat", "--peer", mesh.address(1), "-y", "You tell stories.",
                                         "-t", "0", "-n", "0"};
  const auto r = run_troupe(args, {}, "Tell me about a cat\nAnd a dog\n");
  INFO(r.err << mesh.logs());
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.rfind("User: Assistant: ", 0) == 0);
  CHECK(r.out.size() > std::string("User: Assistant: \nUser: Assistant: \nUser: \n").size());
  CHECK(run_troupe(args, {}, "Tell me about a cat\nAnd a dog\n").out == r.out);  // deterministic
}
