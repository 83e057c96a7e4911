// The mesh with real `troupe node` processes on loopback: nodes that join without --layers
// elect a coordinator, plan stages and answer exactly; a stage killed mid-answer, a killed
// coordinator, a node joining late and a node too small for a stage all leave the answers exact.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/cases.hpp"
#include "support/nodes.hpp"
#include "support/process.hpp"
#include "troupe/model/error.hpp"
#include "troupe/net/client.hpp"

using namespace troupe::test;
namespace wire = troupe::wire;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Every node weighs the same for the planner, so that plans do not depend on how busy the
// machine was while each node measured itself.
const std::vector<std::string> kEqual = {"--throughput", "10"};

NodeSpec planned(const std::string& name) { return {name, std::nullopt, true}; }

std::size_t index_of(Mesh& mesh, const std::string& address) {
  for (std::size_t i = 0; i < mesh.size(); i++) {
    if (mesh.address(i) == address) return i;
  }
  FAIL("no node at " << address);
  return 0;
}

}  // namespace

TEST_CASE("nodes that join without --layers plan stages and answer every case through any node", "[mesh]") {
  Mesh mesh({planned("a"), planned("b"), planned("c")}, kEqual);
  for (std::size_t i = 0; i < 3; i++) {
    const auto s = wait_status(mesh, i, [](const wire::Status& s) { return serving_with(s, 3); });
    CHECK(s.term >= 1);
    REQUIRE(s.coordinator);
    CHECK(s.stages[0].layers.begin == 0);
    CHECK(s.stages[2].layers.end == 5);
  }
  const json cases = reference_cases();
  for (std::size_t i = 0; i < cases.size(); i++) check_case(mesh, i % 3, cases[i]);
}

TEST_CASE("a stage killed mid-answer: the answer completes, byte-identical", "[mesh]") {
  // A model big enough that the answer takes seconds.
  const std::string dir = temp_dir();
  const std::string model = dir + "/long.gguf";
  REQUIRE(run_troupe({"synth", "--dim", "256", "--hidden", "768", "--layers", "6", "--heads", "8",
                      "--kv-heads", "4", "--vocab", "2048", "--seq-len", "1024", "--seed", "5",
                      "--out", model}).exit_code == 0);
  const std::vector<std::string> settings = {"-t", "1", "-s", "42", "-n", "900", "-i", "Once upon"};
  std::vector<std::string> run_args = {"run", model, "--threads", "1"};
  run_args.insert(run_args.end(), settings.begin(), settings.end());
  const auto undisturbed = run_troupe(run_args);
  REQUIRE(undisturbed.exit_code == 0);

  Mesh mesh({planned("a"), planned("b"), planned("c")}, kEqual, {}, model);
  const auto s = wait_status(mesh, 0, [](const wire::Status& s) { return serving_with(s, 3); });
  const std::size_t entry = index_of(mesh, s.stages[0].address);
  const std::size_t victim = index_of(mesh, s.stages[1].address);

  wire::GenerateRequest request;
  request.prompt = "Once upon";
  request.sampling = {1.0f, 0.9f, 42};
  request.steps = 900;
  const std::string text = answer_killing(mesh, entry, request, victim, 100);  // 100 tokens in
  INFO(mesh.logs());
  CHECK(text + "\n" == undisturbed.out);
  CHECK(mesh.logs().find("re-routing") != std::string::npos);
  // The survivors serve on without it.
  const auto after = wait_status(mesh, entry, [](const wire::Status& s) { return serving_with(s, 2); });
  for (const auto& st : after.stages) CHECK(st.address != mesh.address(victim));
}

TEST_CASE("four sessions batched at every stage, a stage killed mid-answer: every answer completes, byte-identical",
          "[mesh][batch]") {
  const std::string dir = temp_dir();
  const std::string model = dir + "/long.gguf";
  REQUIRE(run_troupe({"synth", "--dim", "256", "--hidden", "768", "--layers", "6", "--heads", "8",
                      "--kv-heads", "4", "--vocab", "2048", "--seq-len", "1024", "--seed", "5",
                      "--out", model}).exit_code == 0);
  // One greedy answer and three seeded ones, of different prompts.
  const std::vector<std::vector<std::string>> settings = {{"-t", "1", "-s", "42", "-n", "900", "-i", "Once upon"},
                                                          {"-t", "0", "-n", "800", "-i", "A dog"},
                                                          {"-t", "0.8", "-s", "7", "-n", "850", "-i", "The sun was"},
                                                          {"-t", "1", "-s", "3", "-n", "700", "-i", "Tom"}};
  std::vector<std::string> alone;
  for (const auto& set : settings) {
    std::vector<std::string> args = {"run", model, "--threads", "1"};
    args.insert(args.end(), set.begin(), set.end());
    const auto r = run_troupe(args);
    REQUIRE(r.exit_code == 0);
    alone.push_back(r.out);
  }
  Mesh mesh({planned("a"), planned("b"), planned("c")}, kEqual, {}, model);
  const auto s = wait_status(mesh, 0, [](const wire::Status& s) { return serving_with(s, 3); });
  const std::size_t entry = index_of(mesh, s.stages[0].address);
  const std::size_t victim = index_of(mesh, s.stages[1].address);
  std::vector<std::future<ProcessResult>> others;
  for (std::size_t i = 1; i < settings.size(); i++) {
    std::vector<std::string> args = {"generate", "--peer", mesh.address(entry)};
    args.insert(args.end(), settings[i].begin(), settings[i].end());
    const auto more = mesh.client_args();
    args.insert(args.end(), more.begin(), more.end());
    others.push_back(std::async(std::launch::async, [args] { return run_troupe(args); }));
  }
  wire::GenerateRequest request;
  request.prompt = "Once upon";
  request.sampling = {1.0f, 0.9f, 42};
  request.steps = 900;
  const std::string text = answer_killing(mesh, entry, request, victim, 100);
  INFO(mesh.logs());
  CHECK(text + "\n" == alone[0]);
  for (std::size_t i = 1; i < settings.size(); i++) {
    const ProcessResult r = others[i - 1].get();
    INFO("session " << i << ": " << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == alone[i]);
  }
  // The entry's stage ran them side by side.
  const wire::NodeCounters c = status_of(mesh.address(entry), mesh.security()).counters;
  CHECK(c.stage_pass_sessions > c.stage_passes);
}

TEST_CASE("the coordinator killed: another is elected, and restarted, it rejoins as a member", "[mesh]") {
  Mesh mesh({planned("a"), planned("b"), planned("c")}, kEqual);
  const auto s = wait_status(mesh, 1, [](const wire::Status& s) { return serving_with(s, 3); });
  REQUIRE(s.coordinator);
  std::size_t old = 0;
  while (mesh.name(old) != *s.coordinator) old++;
  const std::size_t other = (old + 1) % 3;
  mesh.process(old).stop(SIGKILL);
  const auto after = wait_status(mesh, other, [&](const wire::Status& x) {
    return x.coordinator && *x.coordinator != mesh.name(old) && serving_with(x, 2);
  });
  CHECK(after.term > s.term);
  const json cases = reference_cases();
  check_case(mesh, other, cases[0]);

  mesh.restart(old, other);
  const auto back = wait_status(mesh, old, [&](const wire::Status& x) {
    return x.coordinator == after.coordinator && x.serving && x.members.size() == 3;
  });
  CHECK(back.term >= after.term);
  for (const auto& m : back.members) CHECK(m.state == "alive");
  // It takes a stage again in the next plan, and answers exactly through it.
  wait_status(mesh, old, [](const wire::Status& x) { return serving_with(x, 3); });
  check_case(mesh, old, cases[1]);
}

TEST_CASE("a fourth node joins: a new plan uses it and answers stay exact", "[mesh]") {
  Mesh mesh({planned("a"), planned("b"), planned("c")}, kEqual);
  const auto s = wait_status(mesh, 0, [](const wire::Status& s) { return serving_with(s, 3); });
  const std::size_t d = mesh.add(planned("d"), 2, kEqual);
  const auto after = wait_status(mesh, 0, [](const wire::Status& x) { return serving_with(x, 4); });
  CHECK(after.plan_version > s.plan_version);
  bool uses_d = false;
  for (const auto& st : after.stages) uses_d = uses_d || st.node == "d";
  CHECK(uses_d);
  const json cases = reference_cases();
  for (std::size_t i = 0; i < cases.size(); i++) check_case(mesh, i % 2 ? d : 0, cases[i]);
}

TEST_CASE("a node with a tiny --mem-budget gets no stage, and the plan still covers the model", "[mesh]") {
  Mesh mesh({planned("a"), planned("b"), {"tiny", std::nullopt, false}}, kEqual);
  const auto s = wait_status(mesh, 2, [](const wire::Status& s) { return serving_with(s, 2); });
  for (const auto& st : s.stages) CHECK(st.node != "tiny");
  CHECK(s.stages.front().layers.begin == 0);
  CHECK(s.stages.back().layers.end == 5);
  check_case(mesh, 2, reference_cases()[2]);
}

TEST_CASE("with --discover, nodes find each other on the local network without --join", "[mesh]") {
  const std::string dir = temp_dir();
  const std::string udp = std::to_string(free_port());
  std::vector<std::string> addresses;
  std::vector<std::unique_ptr<BackgroundProcess>> nodes;
  for (const char* name : {"x", "y"}) {
    addresses.push_back("127.0.0.1:" + std::to_string(free_port()));
    nodes.push_back(std::make_unique<BackgroundProcess>(
        std::vector<std::string>{TROUPE_BINARY, "node", "--listen", addresses.back(), "--name", name,
                                 "--model", stories_model(), "--tokenizer", stories_tokenizer(),
                                 "--threads", "1", "--throughput", "10", "--discover",
                                 "--discover-port", udp},
        dir + "/" + name + ".log"));
  }
  auto logs = [&] { return nodes[0]->log() + "\n" + nodes[1]->log(); };
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  wire::Status s;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      s = status_of(addresses[1]);
      if (s.members.size() == 2 && s.serving && s.stages.size() == 2) break;
    } catch (...) {
    }
    std::this_thread::sleep_for(100ms);
  }
  INFO(logs());
  REQUIRE(s.members.size() == 2);
  CHECK(s.serving);
  CHECK(logs().find("discovered") != std::string::npos);
  const auto r = run_troupe(generate_args(addresses[0], reference_cases()[0]));
  CHECK(r.out == reference_cases()[0]["expected_stdout"].get<std::string>());
}

TEST_CASE("Ctrl-C in troupe chat cancels the answer at the node, and the chat goes on", "[mesh][chat]") {
  // A model slow enough (one thread) that an answer of 1024 positions takes seconds.
  const TempDir dir;
  const std::string model = dir / "slow.gguf";
  REQUIRE(run_troupe({"synth", "--dim", "512", "--hidden", "1536", "--layers", "8", "--heads", "8", "--kv-heads",
                      "8", "--vocab", "4096", "--seq-len", "1024", "--seed", "3", "--out", model}).exit_code == 0);
  Mesh mesh({planned("a")}, kEqual, {}, model);  // (the nodes run one thread each)
  const auto serving = wait_status(mesh, 0, [](const wire::Status& s) { return serving_with(s, 1); });
  REQUIRE(serving_with(serving, 1));

  BackgroundProcess chat({TROUPE_BINARY, "chat", "--peer", mesh.address(0), "-n", "0", "-s", "7"}, dir / "chat.log",
                         true);
  chat.write_stdin("Tell me a long story\n");
  REQUIRE(chat.wait_log("Assistant: ", 10s));
  const std::size_t answer_at = chat.log().find("Assistant: ") + std::string("Assistant: ").size();
  REQUIRE(chat.wait_log(" ", 10s, answer_at + 4));  // some of the answer has come
  // The node runs the session now.
  CHECK(wait_status(mesh, 0, [](const wire::Status& s) { return s.counters.sessions_active == 1; }).counters
            .sessions_active == 1);
  chat.signal(SIGINT);
  INFO(chat.log() << mesh.logs());
  REQUIRE(chat.wait_log(" [cancelled]\nUser: ", 10s));
  // The client dropped its connection: the node ends the session instead of generating on.
  const auto after = wait_status(mesh, 0, [](const wire::Status& s) { return s.counters.sessions_active == 0; });
  CHECK(after.counters.sessions_active == 0);
  CHECK(after.counters.tokens_generated < 1000);

  // The cancelled turn is not part of the conversation, and the REPL still answers commands.
  const std::size_t before_stats = chat.log().size();
  chat.write_stdin("/stats\n");
  REQUIRE(chat.wait_log("0 turns", 10s, before_stats));
  chat.write_stdin("/quit\n");
  const int status = chat.stop(0, 10s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a node that leaves is shown as left (and for how long), not dead, and a mesh without a plan says it is starting", "[mesh]") {
  Mesh mesh({planned("a"), planned("b"), planned("c")}, kEqual);
  wait_status(mesh, 0, [](const wire::Status& s) { return serving_with(s, 3); });
  mesh.process(2).signal(SIGTERM);  // a clean stop: it says goodbye
  const auto after = wait_status(mesh, 0, [](const wire::Status& s) {
    for (const auto& m : s.members) {
      if (m.name == "c") return m.state != "alive" && m.state != "suspect";
    }
    return false;
  });
  for (const auto& m : after.members) {
    if (m.name == "c") CHECK(m.state == "left");
  }
  // A second on, `troupe status` says how long it has been gone.
  std::this_thread::sleep_for(1500ms);
  std::vector<std::string> status = {"status", "--peer", mesh.address(0)};
  for (const auto& a : mesh.client_args()) status.push_back(a);
  const auto text = run_troupe(status);
  INFO(text.out << text.err);
  REQUIRE(text.exit_code == 0);
  const auto line = text.out.substr(text.out.find("\n  c "));
  CHECK(line.substr(0, line.find('\n', 1)).find(", left for ") != std::string::npos);
  status.push_back("--json");
  const auto json = nlohmann::json::parse(run_troupe(status).out);
  for (const auto& m : json["members"]) {
    if (m["name"] == "c") CHECK(m["since_seconds"].get<double>() >= 1.0);
    if (m["name"] == "a") CHECK(m["since_seconds"].get<double>() > 0);
  }
  // A node of its own, asked before anything is planned.
  Mesh alone({planned("z")}, kEqual);
  troupe::net::MeshClient client(alone.address(0), alone.security(), 5s);
  client.send(wire::Message{0, 1, wire::StatusRequest{}});
  const auto m = client.receive(5s);
  const auto* s = std::get_if<wire::Status>(&m.body);
  REQUIRE(s);
  if (!s->serving) CHECK(s->problem.rfind("starting", 0) == 0);
}
