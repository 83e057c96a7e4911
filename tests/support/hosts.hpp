// Separate hosts for the multi-process tests, so that no test can pass by sharing loopback: each
// host is a network namespace of its own whose only way out is one interface, eth0 at
// 10.77.0.N/24, a veth pair whose other end sits on a bridge in a namespace of its own (the
// root namespace holds neither the bridge nor any 10.x address, so the test process itself
// cannot reach a host: clients run on a host too). Processes run inside a host through
// `ip netns exec`. Loss (`drop`) and interception (`redirect`) are nftables rules inside the
// sending host's namespace.
//
// Names are `troupe-PID-K-...` (PID: the test process; K counts its Hosts), so parallel test
// processes never collide; every test process's first Hosts deletes the namespaces of test
// processes that no longer exist (a run that was killed before its destructors ran).
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/nodes.hpp"
#include "support/process.hpp"

namespace troupe::test {

// Why separate hosts cannot be made here (not root, no `ip` or `nft` tool, namespaces refused),
// or "" when they can. Tries once per test process.
std::string hosts_unavailable(bool with_nft);
// Prints a loud "TROUPE-SKIP: ..." line (CTest marks the test skipped) and returns false when
// separate hosts cannot be made here; true when they can.
bool hosts_or_skip(bool with_nft = false);

class Hosts {
 public:
  explicit Hosts(std::size_t count);  // throws, saying what failed
  ~Hosts();
  Hosts(const Hosts&) = delete;
  Hosts& operator=(const Hosts&) = delete;

  std::size_t size() const { return namespaces_.size(); }
  const std::string& ip(std::size_t host) const { return ips_.at(host); }
  const std::string& namespace_name(std::size_t host) const { return namespaces_.at(host); }
  // argv (argv[0] a path) as run inside `host`.
  std::vector<std::string> command(std::size_t host, const std::vector<std::string>& argv) const;
  // Runs argv inside `host` and collects what it writes.
  ProcessResult run(std::size_t host, const std::vector<std::string>& argv, int timeout_s = 60) const;
  // Drops `percent` % of the packets that `from` sends to `to`, at random.
  void drop(std::size_t from, std::size_t to, int percent);
  // How many packets the drop rules of `from` have dropped so far.
  long dropped(std::size_t from) const;
  // `from`'s TCP connections to `to` (IP:PORT) go to `via` (IP:PORT) instead, unknown to the
  // process that connects: how a relay is put on a path.
  void redirect(std::size_t from, const std::string& to, const std::string& via);

 private:
  void nft(std::size_t host, const std::string& commands);
  void remove();  // the namespaces, and whatever still runs in them
  std::string prefix_;
  std::vector<std::string> namespaces_;  // the hosts'; the bridge's is prefix_ + "lan"
  std::vector<std::string> ips_;
  std::vector<bool> nft_ready_;  // whether a host has its tables yet
};

// What nodes and clients speak between hosts, and the arguments that select it: the one place
// that knows them. Plaintext is the mesh without encryption (no flag while nodes cannot encrypt;
// `--insecure` once they encrypt by default); encrypted is ZeroMQ CURVE under a mesh key.
enum class WireMode { plaintext, encrypted };
// Whether nodes can encrypt: `troupe node --help` lists --insecure.
bool nodes_encrypt();
// The arguments of `mode` for nodes and clients alike; the encrypted mode's key is made in `dir`.
std::vector<std::string> wire_args(WireMode mode, const std::string& dir);
// What users get without asking: encrypted where nodes can encrypt, else plaintext.
WireMode default_wire_mode();

constexpr int kNodePort = 7000;  // every node listens on its host's IP at this port

// `troupe node`s on separate hosts: node i on host i at ip(i):kNodePort, each joining node 0;
// clients (generate, status) run on host `client_host`, which holds no node.
class HostMesh {
 public:
  // `args` go to every node and every client command (the wire mode's); `node_args[i]` to
  // node i alone.
  HostMesh(Hosts& hosts, const std::vector<NodeSpec>& nodes, std::size_t client_host,
           const std::vector<std::string>& args = {}, const std::string& model = {},
           const std::vector<std::vector<std::string>>& node_args = {});
  ~HostMesh();

  std::size_t size() const { return processes_.size(); }
  std::string address(std::size_t node) const;
  BackgroundProcess& process(std::size_t node) { return *processes_.at(node); }
  // The node whose name is `name` (fails the test when none is).
  std::size_t index_of(const std::string& name) const;
  // `troupe ARGS` run on the client host, with the mesh's arguments appended.
  ProcessResult client(std::vector<std::string> args) const;
  // `troupe ARGS` started in the background on the client host; stdout to out_path, stderr
  // to err_path.
  std::unique_ptr<BackgroundProcess> start_client(std::vector<std::string> args, const std::string& out_path,
                                                  const std::string& err_path) const;
  // `troupe status --json` through `node`: the JSON, or null when it did not answer.
  nlohmann::json status(std::size_t node) const;
  // Waits until `node` says the mesh serves with `stages` stages; returns that status (fails
  // the test, with every log, on timeout).
  nlohmann::json wait_serving(std::size_t node, std::size_t stages,
                              std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  std::string logs() const;  // every node's log, headed by its name

 private:
  Hosts& hosts_;
  std::size_t client_host_;
  std::vector<std::string> args_;
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<BackgroundProcess>> processes_;
  TempDir dir_;
};

}  // namespace troupe::test
