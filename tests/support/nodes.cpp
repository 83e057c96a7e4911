#include "support/nodes.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/process.hpp"
#include "troupe/net/client.hpp"
#include "troupe/net/mesh_key.hpp"

namespace troupe::test {

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv, std::string log_path, bool stdin_pipe,
                                     const std::string& err_path)
    : log_path_(std::move(log_path)) {
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err = err_path.empty() ? log : open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int in[2] = {-1, -1};
  if (stdin_pipe) {
    if (pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  } else {
    in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  if (log < 0 || err < 0 || in[0] < 0) throw std::runtime_error("cannot open " + log_path_);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // Only async-signal-safe calls between fork and exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(in[0], 0);
    dup2(log, 1);
    dup2(err, 2);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  close(log);
  if (err != log) close(err);
  close(in[0]);
  stdin_ = in[1];
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

void BackgroundProcess::write_stdin(const std::string& text) {
  if (stdin_ < 0) throw std::logic_error("the process was started without a stdin pipe");
  ::signal(SIGPIPE, SIG_IGN);  // a process that exited: an error here, not the end of the tests
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(stdin_, text.data() + done, text.size() - done);
    if (n <= 0) throw std::runtime_error("cannot write to the process's stdin");
    done += std::size_t(n);
  }
}

bool BackgroundProcess::wait_log(const std::string& text, std::chrono::milliseconds timeout, std::size_t from) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    const std::string l = log();
    if (l.size() > from && l.find(text, from) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

BackgroundProcess::~BackgroundProcess() {
  if (stdin_ >= 0) close(stdin_);
  if (pid_ > 0) stop(SIGKILL);
}

void BackgroundProcess::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

bool BackgroundProcess::running() {
  if (pid_ <= 0) return false;
  if (waitpid(pid_, &status_, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int BackgroundProcess::stop(int sig, std::chrono::milliseconds grace) {
  if (pid_ <= 0) return status_;
  ::kill(pid_, sig);
  ::kill(pid_, SIGCONT);  // a stopped process must run to take the signal
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (waitpid(pid_, &status_, WNOHANG) != pid_) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
  return status_;
}

std::string BackgroundProcess::log() const {
  std::ifstream f(log_path_);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("no free port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

net::MeshSecurity mesh_security(bool insecure) {
  if (insecure) return net::MeshSecurity::insecure();
  return net::MeshSecurity::from_secret(net::load_key(config_home() + "/troupe/mesh.key", true).secret);
}

std::string stories_model() { return shared_dir() + "/models/stories260K/stories260K.bin"; }
std::string stories_tokenizer() { return shared_dir() + "/models/stories260K/tok512.bin"; }

Mesh::Mesh(const std::vector<NodeSpec>& nodes, const std::vector<std::string>& extra_args,
           const std::vector<std::vector<std::string>>& node_args, const std::string& model)
    : model_(model), dir_(temp_dir()) {
  insecure_ = std::find(extra_args.begin(), extra_args.end(), "--insecure") != extra_args.end();
  for (std::size_t i = 0; i < nodes.size(); i++) {
    std::vector<std::string> args = extra_args;
    if (i < node_args.size()) args.insert(args.end(), node_args[i].begin(), node_args[i].end());
    specs_.push_back(nodes[i]);
    args_.push_back(std::move(args));
    names_.push_back(nodes[i].name);
    addresses_.push_back("127.0.0.1:" + std::to_string(free_port()));
    old_logs_.emplace_back();
  }
  for (std::size_t i = 0; i < nodes.size(); i++) start(i, i > 0 ? std::optional<std::size_t>(0) : std::nullopt);
}

std::vector<std::string> node_argv(const NodeSpec& spec, const std::string& address, const std::string& model) {
  std::vector<std::string> argv = spec.launcher;
  if (argv.empty()) argv.push_back(TROUPE_BINARY);
  argv.insert(argv.end(), {"node", "--listen", address, "--name", spec.name, "--threads", "1"});
  if (model.empty()) {
    argv.insert(argv.end(), {"--model", stories_model(), "--tokenizer", stories_tokenizer()});
  } else {
    argv.insert(argv.end(), {"--model", model});
  }
  if (spec.layers) {
    argv.push_back("--layers");
    argv.push_back(std::to_string(spec.layers->first) + ":" + std::to_string(spec.layers->second));
  } else if (!spec.planned) {
    argv.push_back("--mem-budget");
    argv.push_back("1K");
  }
  return argv;
}

void Mesh::start(std::size_t i, std::optional<std::size_t> via) {
  std::vector<std::string> argv = node_argv(specs_[i], addresses_[i], model_);
  if (via) {
    argv.push_back("--join");
    argv.push_back(addresses_.at(*via));
  }
  argv.insert(argv.end(), args_[i].begin(), args_[i].end());
  if (i < processes_.size()) {
    old_logs_[i] += processes_[i]->log();
    processes_[i] = std::make_unique<BackgroundProcess>(argv, dir_ + "/" + names_[i] + ".log");
  } else {
    processes_.push_back(std::make_unique<BackgroundProcess>(argv, dir_ + "/" + names_[i] + ".log"));
  }
}

std::size_t Mesh::add(const NodeSpec& node, std::size_t via, const std::vector<std::string>& args) {
  specs_.push_back(node);
  args_.push_back(args);
  names_.push_back(node.name);
  addresses_.push_back("127.0.0.1:" + std::to_string(free_port()));
  old_logs_.emplace_back();
  start(specs_.size() - 1, via);
  return specs_.size() - 1;
}

void Mesh::restart(std::size_t i, std::size_t via) { start(i, via); }

Mesh::~Mesh() {
  for (auto& p : processes_) p->stop(SIGTERM, std::chrono::seconds(3));
}

bool Mesh::wait_serving(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (std::size_t i = 0; i < addresses_.size(); i++) {
    if (!processes_[i]->running()) continue;
    while (true) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      try {
        net::MeshClient client(addresses_[i], security(), std::chrono::milliseconds(500));
        client.send(wire::Message{0, 1, wire::StatusRequest{}});
        const auto m = client.receive(std::chrono::milliseconds(500));
        const auto* s = std::get_if<wire::Status>(&m.body);
        if (s && s->serving) break;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  return true;
}

wire::Status wait_status(Mesh& mesh, std::size_t node, const std::function<bool(const wire::Status&)>& ok,
                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  wire::Status last;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      net::MeshClient client(mesh.address(node), mesh.security(), std::chrono::seconds(1));
      client.send(wire::Message{0, 1, wire::StatusRequest{}});
      const wire::Message m = client.receive(std::chrono::seconds(1));
      if (const auto* s = std::get_if<wire::Status>(&m.body)) {
        last = *s;
        if (ok(last)) return last;
      }
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("node " << mesh.name(node) << " never reached the awaited state\n" << mesh.logs());
  return last;
}

bool serving_with(const wire::Status& s, std::size_t stages) { return s.serving && s.stages.size() == stages; }

std::string answer_killing(Mesh& mesh, std::size_t entry, const wire::GenerateRequest& request, std::size_t victim,
                           int kill_after) {
  net::MeshClient client(mesh.address(entry), mesh.security());
  client.send(wire::Message{0, 1, request});
  std::string text;
  int pieces = 0;
  while (true) {
    const wire::Message m = client.receive(std::chrono::seconds(60));
    if (const auto* t = std::get_if<wire::Text>(&m.body)) {
      text += t->text;
      if (++pieces == kill_after) mesh.process(victim).stop(SIGKILL);
      continue;
    }
    INFO(mesh.logs());
    REQUIRE(std::holds_alternative<wire::Done>(m.body));
    REQUIRE(pieces > kill_after);  // the answer went on after the kill
    return text;
  }
}

std::vector<std::string> Mesh::client_args() const {
  return insecure_ ? std::vector<std::string>{"--insecure"} : std::vector<std::string>{};
}

std::string Mesh::logs() const {
  std::string all;
  for (std::size_t i = 0; i < processes_.size(); i++) {
    all += "--- " + names_[i] + " (" + addresses_[i] + ")\n" + old_logs_[i] + processes_[i]->log();
  }
  return all;
}

}  // namespace troupe::test
