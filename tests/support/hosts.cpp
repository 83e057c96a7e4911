#include "support/hosts.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace troupe::test {

namespace {

// A tool's path: `ip` and `nft` live in sbin, which not every PATH holds.
std::string find_tool(const std::string& name) {
  std::string dirs = getenv("PATH") ? getenv("PATH") : "";
  dirs += ":/usr/sbin:/sbin:/usr/bin:/bin";
  std::stringstream s(dirs);
  for (std::string dir; std::getline(s, dir, ':');) {
    if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
  }
  return {};
}

const std::string& ip_tool() {
  static const std::string path = find_tool("ip");
  return path;
}

const std::string& nft_tool() {
  static const std::string path = find_tool("nft");
  return path;
}

std::string trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

// Runs `ip ARGS` with `input` (a -batch script) and throws naming `what` when it fails.
void run_ip(const std::vector<std::string>& args, const std::string& what, const std::string& input = {}) {
  std::vector<std::string> argv = {ip_tool()};
  argv.insert(argv.end(), args.begin(), args.end());
  const ProcessResult r = run_process(argv, {}, input, 30);
  if (r.exit_code != 0) throw std::runtime_error(what + " failed: " + trimmed(r.err));
}

// Kills what still runs inside a namespace (processes of a killed test run), then deletes it.
void delete_namespaces(const std::vector<std::string>& names) {
  std::string script;
  for (const std::string& name : names) {
    const ProcessResult pids = run_process({ip_tool(), "netns", "pids", name}, {}, {}, 30);
    std::stringstream s(pids.out);
    for (pid_t pid; s >> pid;) kill(pid, SIGKILL);
    script += "netns delete " + name + "\n";
  }
  if (!script.empty()) run_process({ip_tool(), "-force", "-batch", "-"}, {}, script, 30);
}

// Namespaces of test processes that no longer exist: `troupe-PID-...` with PID gone.
void delete_leftovers() {
  std::vector<std::string> stale;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ignored)) {
    const std::string name = entry.path().filename();
    if (name.rfind("troupe-", 0) != 0) continue;
    const pid_t pid = std::atoi(name.c_str() + 7);
    if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  delete_namespaces(stale);
}

}  // namespace

std::string hosts_unavailable(bool with_nft) {
  static const std::string why = [] {
    if (geteuid() != 0) {
      return "not root (uid " + std::to_string(geteuid()) + "): network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN";
    }
    if (ip_tool().empty()) return std::string("no `ip` tool (Debian package iproute2)");
    try {
      Hosts probe(2);
      const ProcessResult r = probe.run(0, {ip_tool(), "-o", "addr", "show", "dev", "eth0"});
      if (r.out.find(probe.ip(0)) == std::string::npos) return "host 0 has no address " + probe.ip(0) + ": " + r.out + r.err;
    } catch (const std::exception& e) {
      return std::string("cannot make network namespaces: ") + e.what();
    }
    return std::string();
  }();
  if (!why.empty() || !with_nft) return why;
  static const std::string nft_why = []() -> std::string {
    if (nft_tool().empty()) return "no `nft` tool (Debian package nftables)";
    try {  // the kernel may lack nftables, its random numbers or its NAT
      Hosts probe(1);
      probe.drop(0, 0, 1);
      probe.redirect(0, probe.ip(0) + ":1", probe.ip(0) + ":2");
    } catch (const std::exception& e) {
      return std::string("nftables does not work in a namespace: ") + e.what();
    }
    return {};
  }();
  return nft_why;
}

bool hosts_or_skip(bool with_nft) {
  const std::string why = hosts_unavailable(with_nft);
  if (why.empty()) return true;
  WARN("TROUPE-SKIP: this test needs separate hosts, which cannot be made here: " << why
                                                                                 << ". It did not run.");
  return false;
}

Hosts::Hosts(std::size_t count) {
  if (count > 250) throw std::invalid_argument("at most 250 hosts on one 10.77.0.0/24 bridge");
  static std::atomic<int> made{0};
  static const bool cleaned = (delete_leftovers(), true);
  (void)cleaned;
  prefix_ = "troupe-" + std::to_string(getpid()) + "-" + std::to_string(made++) + "-";
  std::string add = "netns add " + prefix_ + "lan\n", lan = "link add br0 type bridge\nlink set br0 up\n";
  for (std::size_t i = 0; i < count; i++) {
    namespaces_.push_back(prefix_ + "h" + std::to_string(i));
    ips_.push_back("10.77.0." + std::to_string(i + 1));
    add += "netns add " + namespaces_[i] + "\n";
    std::string end = "h";  // appended: GCC 12 warns falsely (-Wrestrict) on "h" + std::string
    end += std::to_string(i);
    lan += "link add " + end + " type veth peer name eth0 netns " + namespaces_[i] + "\n";
    lan += "link set " + end + " master br0 up\n";
  }
  nft_ready_.assign(count, false);
  try {
    run_ip({"-batch", "-"}, "ip netns add", add);
    run_ip({"-n", prefix_ + "lan", "-batch", "-"}, "making the bridge and veth pairs", lan);
    for (std::size_t i = 0; i < count; i++) {
      run_ip({"-n", namespaces_[i], "-batch", "-"}, "addressing " + namespaces_[i],
         "addr add " + ips_[i] + "/24 dev eth0\nlink set eth0 up\nlink set lo up\n");
    }
  } catch (...) {
    remove();
    throw;
  }
}

Hosts::~Hosts() { remove(); }

void Hosts::remove() {
  std::vector<std::string> all = namespaces_;
  all.push_back(prefix_ + "lan");
  delete_namespaces(all);
}

std::vector<std::string> Hosts::command(std::size_t host, const std::vector<std::string>& argv) const {
  std::vector<std::string> full = {ip_tool(), "netns", "exec", namespaces_.at(host)};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

ProcessResult Hosts::run(std::size_t host, const std::vector<std::string>& argv, int timeout_s) const {
  return run_process(command(host, argv), {}, {}, timeout_s);
}

void Hosts::nft(std::size_t host, const std::string& commands) {
  std::string script;
  if (!nft_ready_.at(host)) {
    script = "add table inet troupe\n"
             "add chain inet troupe out { type filter hook output priority 0; }\n"
             "add table ip troupe_nat\n"
             "add chain ip troupe_nat out { type nat hook output priority -100; }\n";
  }
  script += commands;
  const ProcessResult r = run_process(command(host, {nft_tool(), "-f", "/dev/stdin"}), {}, script, 30);
  if (r.exit_code != 0) throw std::runtime_error("nft in " + namespaces_[host] + " failed: " + trimmed(r.err));
  nft_ready_[host] = true;
}

void Hosts::drop(std::size_t from, std::size_t to, int percent) {
  nft(from, "add rule inet troupe out ip daddr " + ip(to) + " numgen random mod 100 < " + std::to_string(percent) +
                " counter drop\n");
}

long Hosts::dropped(std::size_t from) const {
  const ProcessResult r = run(from, {nft_tool(), "list", "table", "inet", "troupe"});
  long total = 0;
  const std::string key = "counter packets ";
  for (auto at = r.out.find(key); at != std::string::npos; at = r.out.find(key, at + 1)) {
    total += std::atol(r.out.c_str() + at + key.size());
  }
  return total;
}

void Hosts::redirect(std::size_t from, const std::string& to, const std::string& via) {
  const auto colon = to.rfind(':');
  nft(from, "add rule ip troupe_nat out ip daddr " + to.substr(0, colon) + " tcp dport " + to.substr(colon + 1) +
                " dnat to " + via + "\n");
}

bool nodes_encrypt() {
  static const bool yes = run_troupe({"node", "--help"}).out.find("--insecure") != std::string::npos;
  return yes;
}

std::vector<std::string> wire_args(WireMode mode, const std::string& dir) {
  if (mode == WireMode::plaintext) return nodes_encrypt() ? std::vector<std::string>{"--insecure"} : std::vector<std::string>{};
  REQUIRE(nodes_encrypt());
  const std::string key = dir + "/mesh.key";
  const ProcessResult r = run_troupe({"keygen", "--out", key});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return {"--mesh-key", key};
}

WireMode default_wire_mode() { return nodes_encrypt() ? WireMode::encrypted : WireMode::plaintext; }

HostMesh::HostMesh(Hosts& hosts, const std::vector<NodeSpec>& nodes, std::size_t client_host,
                   const std::vector<std::string>& args, const std::string& model,
                   const std::vector<std::vector<std::string>>& node_args)
    : hosts_(hosts), client_host_(client_host), args_(args) {
  REQUIRE(nodes.size() <= hosts.size());
  REQUIRE(client_host < hosts.size());
  REQUIRE(client_host >= nodes.size());
  for (std::size_t i = 0; i < nodes.size(); i++) {
    names_.push_back(nodes[i].name);
    std::vector<std::string> argv = node_argv(nodes[i], address(i), model);
    if (i > 0) argv.insert(argv.end(), {"--join", address(0)});
    argv.insert(argv.end(), args.begin(), args.end());
    if (i < node_args.size()) argv.insert(argv.end(), node_args[i].begin(), node_args[i].end());
    processes_.push_back(std::make_unique<BackgroundProcess>(hosts.command(i, argv), dir_ / (nodes[i].name + ".log")));
  }
}

HostMesh::~HostMesh() {
  for (auto& p : processes_) p->stop(SIGTERM, std::chrono::seconds(3));
}

std::string HostMesh::address(std::size_t node) const { return hosts_.ip(node) + ":" + std::to_string(kNodePort); }

std::size_t HostMesh::index_of(const std::string& name) const {
  for (std::size_t i = 0; i < names_.size(); i++) {
    if (names_[i] == name) return i;
  }
  FAIL("no node named " << name);
  return 0;
}

ProcessResult HostMesh::client(std::vector<std::string> args) const {
  args.insert(args.begin(), TROUPE_BINARY);
  args.insert(args.end(), args_.begin(), args_.end());
  return hosts_.run(client_host_, args, 120);
}

std::unique_ptr<BackgroundProcess> HostMesh::start_client(std::vector<std::string> args, const std::string& out_path,
                                                          const std::string& err_path) const {
  args.insert(args.begin(), TROUPE_BINARY);
  args.insert(args.end(), args_.begin(), args_.end());
  return std::make_unique<BackgroundProcess>(hosts_.command(client_host_, args), out_path, false, err_path);
}

nlohmann::json HostMesh::status(std::size_t node) const {
  const ProcessResult r = client({"status", "--peer", address(node), "--json"});
  if (r.exit_code != 0) return nullptr;
  return nlohmann::json::parse(r.out, nullptr, false);
}

nlohmann::json HostMesh::wait_serving(std::size_t node, std::size_t stages, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  nlohmann::json last;
  while (std::chrono::steady_clock::now() < deadline) {
    last = status(node);
    if (last.is_object() && last["serving"] == true && last["plan"]["stages"].size() == stages) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL("node " << names_.at(node) << " never served with " << stages << " stages; last status: " << last.dump(2)
                << "\n" << logs());
  return last;
}

std::string HostMesh::logs() const {
  std::string all;
  for (std::size_t i = 0; i < processes_.size(); i++) {
    all += "--- " + names_[i] + " (" + address(i) + ", namespace " + hosts_.namespace_name(i) + ")\n" +
           processes_[i]->log();
  }
  return all;
}

}  // namespace troupe::test
