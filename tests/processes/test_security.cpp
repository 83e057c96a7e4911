// A mesh a stranger can neither join nor read (docs/security.md): real `troupe node` processes on
// loopback. Nodes and clients without the mesh secret, raw ZeroMQ sockets without CURVE and
// --insecure peers of a secure mesh are refused at the handshake and logged; forged beacons are
// ignored; join tokens carry the secret; key files and tokens that are not right are exit 2.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <thread>
#include <zmq.hpp>

#include "support/cases.hpp"
#include "support/nodes.hpp"
#include "support/process.hpp"
#include "troupe/net/addresses.hpp"
#include "troupe/net/client.hpp"
#include "troupe/net/join_token.hpp"
#include "troupe/net/lan_beacon.hpp"
#include "troupe/protocol/wire.hpp"

using namespace troupe::test;
namespace wire = troupe::wire;
namespace net = troupe::net;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kEqual = {"--throughput", "10"};

NodeSpec planned(const std::string& name) { return {name, std::nullopt, true}; }

// A key file of another mesh.
std::string other_key(const TempDir& dir) {
  const std::string path = dir / "other.key";
  const auto r = run_troupe({"keygen", "--out", path});
  REQUIRE(r.exit_code == 0);
  return path;
}

// Bad input: exit 2, nothing on stdout, one line on stderr holding `names`.
void expect_refusal(const ProcessResult& r, const std::string& names) {
  INFO("stderr: " << r.err << "\nstdout: " << r.out);
  CHECK(r.signal == 0);
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find(names) != std::string::npos);
}

// The names of the members a node knows, sorted.
std::vector<std::string> member_names(const wire::Status& s) {
  std::vector<std::string> names;
  for (const auto& m : s.members) names.push_back(m.name);
  std::sort(names.begin(), names.end());
  return names;
}

// Waits until the status of `address` satisfies `ok`; the last one seen.
wire::Status wait_status(const std::string& address, const std::function<bool(const wire::Status&)>& ok,
                         const troupe::net::MeshSecurity& security = mesh_security(),
                         std::chrono::milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  wire::Status last;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      last = status_of(address, security);
      if (ok(last)) break;
    } catch (...) {
    }
    std::this_thread::sleep_for(100ms);
  }
  return last;
}

std::vector<std::string> node_args(const std::string& listen, const std::string& name) {
  return {TROUPE_BINARY, "node", "--listen", listen, "--name", name, "--model", stories_model(),
          "--tokenizer", stories_tokenizer(), "--threads", "1", "--mem-budget", "1K"};
}

}  // namespace

TEST_CASE("a node with another mesh secret gets no membership, no stage and no answer", "[security]") {
  const TempDir dir;
  const std::string other = other_key(dir);
  Mesh mesh({planned("a")}, {}, {kEqual});
  REQUIRE(mesh.wait_serving());
  // It would take every layer if it were let in: it claims a hundred times a's throughput.
  const std::size_t impostor = mesh.add(planned("impostor"), 0, {"--mesh-key", other, "--throughput", "1000"});
  INFO(mesh.logs());
  REQUIRE(mesh.process(impostor).wait_log("the handshake fails", 15s));
  REQUIRE(mesh.process(0).wait_log("refused a connection from", 10s));
  const wire::Status s = status_of(mesh.address(0));
  CHECK(member_names(s) == std::vector<std::string>{"a"});
  REQUIRE(s.stages.size() == 1);
  CHECK(s.stages[0].node == "a");
  CHECK(s.serving);

  // Its clients get nothing either: one line, exit 2.
  const auto r = run_troupe({"generate", "--peer", mesh.address(0), "--mesh-key", other, "-i", "Once"});
  expect_refusal(r, "refused the handshake");
  const auto status = run_troupe({"status", "--peer", mesh.address(0), "--mesh-key", other});
  expect_refusal(status, "refused the handshake");
  check_case(mesh, 0, reference_cases()[1]);  // the mesh goes on answering its own
}

TEST_CASE("a raw ZeroMQ socket without CURVE gets no answer, and its session_end ends nothing", "[security]") {
  Mesh mesh({{"s0", std::pair{0, 2}}, {"s1", std::pair{2, 5}}, {"e", std::nullopt}});
  REQUIRE(mesh.wait_serving());
  const json c = reference_cases()[1];  // greedy, "Once upon a time"
  // A session in flight: s1 is stopped, so the session waits there until it runs again.
  troupe::net::MeshClient client(mesh.address(2), mesh.security());
  mesh.process(1).signal(SIGSTOP);
  wire::GenerateRequest request;
  request.prompt = c["prompt"];
  request.sampling = {0, 0.9f, 1};
  request.steps = c["steps"];
  client.send(wire::Message{0, 1, request});
  const wire::Message echo = client.receive(10s);
  REQUIRE(std::holds_alternative<wire::Text>(echo.body));
  std::string text = std::get<wire::Text>(echo.body).text;

  // A stranger's DEALER at every node: a status request, and session_end for this session and
  // the ones after it (as a client that had learnt the id would send).
  zmq::context_t context;
  std::vector<zmq::socket_t> strangers;
  for (std::size_t i = 0; i < mesh.size(); i++) {
    strangers.emplace_back(context, zmq::socket_type::dealer);
    zmq::socket_t& d = strangers.back();
    d.set(zmq::sockopt::linger, 0);
    d.connect("tcp://" + mesh.address(i));
    d.send(zmq::buffer(wire::encode(wire::Message{0, 1, wire::StatusRequest{}})), zmq::send_flags::dontwait);
    for (uint64_t k = 0; k < 4; k++) {
      d.send(zmq::buffer(wire::encode(wire::Message{echo.session + k, 2, wire::SessionEnd{"stranger"}})),
             zmq::send_flags::dontwait);
    }
  }
  // (s1 goes on before the mesh suspects it: the refusals happen without its help at e and s0,
  // and at s1 once it runs again.)
  std::this_thread::sleep_for(300ms);
  mesh.process(1).signal(SIGCONT);
  while (true) {
    const wire::Message m = client.receive(20s);
    if (const auto* t = std::get_if<wire::Text>(&m.body)) {
      text += t->text;
      continue;
    }
    INFO(mesh.logs());
    REQUIRE(std::holds_alternative<wire::Done>(m.body));
    break;
  }
  CHECK(text + "\n" == c["expected_stdout"].get<std::string>());
  for (std::size_t i = 0; i < mesh.size(); i++) {
    INFO("node " << mesh.name(i) << "\n" << mesh.logs());
    CHECK(mesh.process(i).wait_log("refused a connection from", 10s));
  }
  zmq::message_t reply;
  for (auto& d : strangers) CHECK_FALSE(d.recv(reply, zmq::recv_flags::dontwait));
  const std::string logs = mesh.logs();
  CHECK(logs.find("stranger") == std::string::npos);
  CHECK(logs.find("unknown session") == std::string::npos);
}

TEST_CASE("a node or client with --insecure on one side only is refused both ways, and status tells", "[security]") {
  Mesh secure({{"s0", std::pair{0, 5}}});
  Mesh open({{"o0", std::pair{0, 5}}}, {"--insecure"});
  REQUIRE(secure.wait_serving());
  REQUIRE(open.wait_serving());
  const std::size_t stray = secure.add({"stray", std::nullopt}, 0, {"--insecure"});
  // The logs are read after each wait, so a failure shows what the nodes had written by then.
  const bool stray_refused = secure.process(stray).wait_log("the handshake fails", 15s);
  // The refusal names the peer's address, or says it was gone already when the handshake's
  // failure was reported (the stray's connection may close first: it retries).
  const bool refusal_logged = secure.process(0).wait_log("refused a connection from", 10s);
  INFO(secure.logs() << open.logs());
  REQUIRE(stray_refused);
  CHECK(secure.process(stray).log().find("--insecure: connections are neither authenticated nor encrypted") !=
        std::string::npos);
  CHECK(refusal_logged);
  CHECK(member_names(status_of(secure.address(0))) == std::vector<std::string>{"s0"});

  expect_refusal(run_troupe({"status", "--peer", secure.address(0), "--insecure"}), "refused the handshake");
  expect_refusal(run_troupe({"status", "--peer", open.address(0)}), "refused the handshake");
  const auto open_status = run_troupe({"status", "--peer", open.address(0), "--insecure", "--json"});
  REQUIRE(open_status.exit_code == 0);
  CHECK(json::parse(open_status.out)["insecure"] == true);
  const auto secure_status = run_troupe({"status", "--peer", secure.address(0), "--json"});
  REQUIRE(secure_status.exit_code == 0);
  CHECK(json::parse(secure_status.out)["insecure"] == false);
  const auto text = run_troupe({"status", "--peer", open.address(0), "--insecure"});
  CHECK(text.out.find("security: none (--insecure") != std::string::npos);
  check_case(open, 0, reference_cases()[0]);
}

TEST_CASE("with --discover, the beacons of another mesh and forged ones are ignored", "[security][discover][hostile]") {
  const TempDir dir;
  const std::string other = other_key(dir);
  const std::string udp = std::to_string(free_port());
  struct Started {
    std::string address;
    std::unique_ptr<BackgroundProcess> process;
  };
  std::vector<Started> nodes;
  for (const auto& [name, key] : std::vector<std::pair<std::string, std::string>>{{"x", ""}, {"y", other}, {"z", ""}}) {
    const std::string address = "127.0.0.1:" + std::to_string(free_port());
    std::vector<std::string> args = node_args(address, name);
    args.insert(args.end(), {"--throughput", "10", "--discover", "--discover-port", udp});
    if (!key.empty()) args.insert(args.end(), {"--mesh-key", key});
    nodes.push_back({address, std::make_unique<BackgroundProcess>(args, dir / (name + ".log"))});
  }
  auto logs = [&] {
    std::string all;
    for (auto& n : nodes) all += n.process->log() + "\n";
    return all;
  };
  // x and z (one mesh) find each other; y (another) is never a member of theirs, nor they of its.
  const auto x = wait_status(nodes[0].address, [](const wire::Status& s) { return s.members.size() == 2; });
  INFO(logs());
  REQUIRE(member_names(x) == std::vector<std::string>{"x", "z"});
  REQUIRE(nodes[1].process->wait_log("not of this mesh (another mesh secret, --insecure on one side, or forged)", 10s));

  // A beacon in the right format naming an address, with a MAC made with a key of no mesh.
  const std::string fake = "127.0.0.1:" + std::to_string(free_port());
  net::Key32 wrong{};
  wrong.fill(7);
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string forged = net::encode_beacon({fake, "any", now}, wrong);
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  in_addr lo{};
  lo.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof lo);
  sockaddr_in group{};
  group.sin_family = AF_INET;
  group.sin_port = htons(static_cast<uint16_t>(std::stoi(udp)));
  inet_pton(AF_INET, net::kBeaconGroup, &group.sin_addr);
  for (int i = 0; i < 3; i++) {
    sendto(fd, forged.data(), forged.size(), 0, reinterpret_cast<sockaddr*>(&group), sizeof group);
    std::this_thread::sleep_for(200ms);
  }
  close(fd);
  std::this_thread::sleep_for(1s);
  CHECK(logs().find("discovered " + fake) == std::string::npos);
  CHECK(logs().find("discovered " + nodes[1].address) == std::string::npos);
  const auto y = status_of(nodes[1].address, net::MeshSecurity::from_secret(net::read_key_file(other).secret));
  CHECK(member_names(y) == std::vector<std::string>{"y"});
  CHECK(member_names(status_of(nodes[0].address)) == std::vector<std::string>{"x", "z"});
}

TEST_CASE("a join token carries the secret and the members: nothing else is needed", "[security][tokens]") {
  const TempDir dir;
  Mesh mesh({{"s0", std::pair{0, 5}}});
  REQUIRE(mesh.wait_serving());
  const auto invite = run_troupe({"invite", "--peer", mesh.address(0)});
  INFO(invite.err);
  REQUIRE(invite.exit_code == 0);
  const std::string token = invite.out.substr(0, invite.out.find('\n'));
  CHECK(invite.out == token + "\n");
  CHECK(net::decode_token(token, "test").addresses == std::vector<std::string>{mesh.address(0)});
  CHECK(invite.err.find(mesh.address(0)) != std::string::npos);

  // Elsewhere (another configuration folder: another default key), the token alone reaches the
  // mesh, for a client and for a node, and no default key is made there.
  const std::vector<std::pair<std::string, std::string>> elsewhere = {{"XDG_CONFIG_HOME", dir / "elsewhere"}};
  const json c = reference_cases()[1];
  const auto r = run_troupe(generate_args(token, c), elsewhere);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == c["expected_stdout"].get<std::string>());
  CHECK(access((dir / "elsewhere/troupe/mesh.key").c_str(), F_OK) != 0);
  std::vector<std::string> argv = node_args("127.0.0.1:" + std::to_string(free_port()), "joiner");
  argv.insert(argv.end(), {"--join", token});
  argv.insert(argv.begin(), {"/usr/bin/env", "XDG_CONFIG_HOME=" + (dir / "elsewhere")});
  BackgroundProcess node(argv, dir / "joiner.log");
  const auto s = wait_status(mesh.address(0), [](const wire::Status& s) { return s.members.size() == 2; });
  INFO(node.log());
  CHECK(member_names(s) == std::vector<std::string>{"joiner", "s0"});
  CHECK(node.log().find(token) == std::string::npos);  // the secret is never logged

  // A mistyped token, one cut short, and a token of another mesh that names this mesh's node.
  std::string typo = token;
  typo[20] = typo[20] == 'a' ? 'b' : 'a';
  expect_refusal(run_troupe({"generate", "--peer", typo, "-i", "x"}), "malformed join token");
  expect_refusal(run_troupe({"status", "--peer", token.substr(0, token.size() - 5)}), "malformed join token");
  expect_refusal(run_troupe({"node", "--listen", "127.0.0.1:1", "--model", stories_model(), "--join", typo}),
                 "malformed join token");
  net::MeshSecret stranger;
  stranger.fill(42);
  const std::string foreign = net::encode_token({stranger, {mesh.address(0)}});
  expect_refusal(run_troupe({"generate", "--peer", foreign, "-i", "x"}), "refused the handshake");
  expect_refusal(run_troupe({"status", "--peer", foreign, "--insecure"}), "--insecure");
  // Without --peer, a token of the secret alone: no member to reach through it.
  const auto bare = run_troupe({"invite"});
  REQUIRE(bare.exit_code == 0);
  CHECK(net::decode_token(bare.out.substr(0, bare.out.find('\n')), "test").addresses.empty());
  expect_refusal(run_troupe({"status", "--peer", bare.out.substr(0, bare.out.find('\n'))}), "names no member");
}

TEST_CASE("keygen writes a new key 0600 and keeps an existing one, and bad key files are exit 2", "[security][keys]") {
  const TempDir dir;
  const std::string key = dir / "mesh.key";
  const auto made = run_troupe({"keygen", "--out", key});
  INFO(made.err);
  REQUIRE(made.exit_code == 0);
  CHECK(made.out.empty());
  struct stat st {};
  REQUIRE(stat(key.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const std::string first = read_all(key);
  CHECK(first.rfind("troupe-mesh-key-1 ", 0) == 0);
  expect_refusal(run_troupe({"keygen", "--out", key}), "exists");
  CHECK(read_all(key) == first);
  REQUIRE(run_troupe({"keygen", "--out", key, "--force"}).exit_code == 0);
  CHECK(read_all(key) != first);
  expect_refusal(run_troupe({"keygen", "--out", dir / "no/such/folder/k"}), dir / "no/such/folder/k");

  write_all(dir / "bad.key", "troupe-mesh-key-1 not hex at all\n");
  expect_refusal(run_troupe({"status", "--peer", "127.0.0.1:1", "--mesh-key", dir / "bad.key"}), dir / "bad.key");
  expect_refusal(run_troupe({"node", "--listen", "127.0.0.1:" + std::to_string(free_port()), "--model",
                             stories_model(), "--mesh-key", dir / "bad.key"}),
                 dir / "bad.key");
  expect_refusal(run_troupe({"generate", "--peer", "127.0.0.1:1", "--mesh-key", dir / "missing.key", "-i", "x"}),
                 dir / "missing.key");
  expect_refusal(run_troupe({"status", "--peer", "127.0.0.1:1", "--mesh-key", key, "--insecure"}), "--insecure");

  // The default key: made 0600 by the first command that needs it, in this test's own folder.
  const std::string default_key = config_home() + "/troupe/mesh.key";
  unlink(default_key.c_str());
  const auto invite = run_troupe({"invite"});
  REQUIRE(invite.exit_code == 0);
  REQUIRE(stat(default_key.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(net::decode_token(invite.out.substr(0, invite.out.find('\n')), "t").secret ==
        net::read_key_file(default_key).secret);
}

TEST_CASE("a wildcard --listen advertises a real address, and IPv6 addresses work", "[security][addresses]") {
  const TempDir dir;
  Mesh mesh({{"s0", std::pair{0, 5}}});
  REQUIRE(mesh.wait_serving());
  const std::string port = std::to_string(free_port());
  std::vector<std::string> argv = node_args("0.0.0.0:" + port, "wide");
  argv.insert(argv.end(), {"--join", mesh.address(0)});
  BackgroundProcess wide(argv, dir / "wide.log");
  const auto s = wait_status(mesh.address(0), [](const wire::Status& s) { return s.members.size() == 2; });
  INFO(wide.log());
  REQUIRE(s.members.size() == 2);
  for (const auto& m : s.members) {
    CHECK(m.address.rfind("0.0.0.0", 0) != 0);
    if (m.name == "wide") CHECK(m.address == "127.0.0.1:" + port);  // the interface toward s0
  }

  // Alone, it takes the machine's one address, or asks for --advertise when there is no one.
  const auto hosts = net::interface_addresses(true, false);
  const std::string alone = "0.0.0.0:" + std::to_string(free_port());
  if (hosts.size() == 1) {
    BackgroundProcess one(node_args(alone, "alone"), dir / "alone.log");
    CHECK(one.wait_log("advertised to peers as " + hosts.front(), 10s));
  } else {
    expect_refusal(run_troupe({"node", "--listen", alone, "--model", stories_model()}), "--advertise");
  }
  expect_refusal(run_troupe({"node", "--listen", alone, "--advertise", "nowhere", "--model", stories_model()}),
                 "--advertise nowhere");

  // IPv6, where the machine has its loopback.
  if (read_all("/proc/net/if_inet6").find("00000000000000000000000000000001") == std::string::npos) {
    WARN("no IPv6 loopback on this machine: the IPv6 part of this test did not run");
    return;
  }
  const std::string v6 = "[::1]:" + std::to_string(free_port());
  std::vector<std::string> v6_args = {TROUPE_BINARY, "node", "--listen", v6, "--name", "six", "--model",
                                      stories_model(), "--tokenizer", stories_tokenizer(), "--threads", "1",
                                      "--layers", "0:5"};
  BackgroundProcess six(v6_args, dir / "six.log");
  const auto six_status = wait_status(v6, [](const wire::Status& s) { return s.serving; });
  INFO(six.log());
  CHECK(six_status.serving);
  const json c = reference_cases()[1];
  const auto r = run_troupe(generate_args(v6, c));
  CHECK(r.out == c["expected_stdout"].get<std::string>());
}

TEST_CASE("a --join address that never answers is reported every few seconds", "[security][addresses]") {
  const TempDir dir;
  const std::string nobody = "127.0.0.1:" + std::to_string(free_port());
  std::vector<std::string> argv = node_args("127.0.0.1:" + std::to_string(free_port()), "lonely");
  argv.insert(argv.end(), {"--join", nobody});
  BackgroundProcess node(argv, dir / "lonely.log");
  const std::string warning = "--join " + nobody + ": nothing answers there";
  REQUIRE(node.wait_log(warning, 15s));
  const std::size_t first = node.log().find(warning);
  CHECK(node.wait_log(warning, 15s, first + warning.size()));  // and again
}
