// Real `troupe node` processes on 127.0.0.1 for the pipeline tests: started in the background,
// always stopped (the destructors kill them; they also die with the test process, through
// PR_SET_PDEATHSIG, should it be killed itself).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "troupe/net/mesh_key.hpp"
#include "troupe/protocol/wire.hpp"

namespace troupe::test {

// A child process whose stdout and stderr go to a log file.
class BackgroundProcess {
 public:
  // With `stdin_pipe`, write_stdin() feeds its standard input (else it reads /dev/null). With
  // `err_path`, stderr goes there instead of the log (which then holds stdout alone).
  BackgroundProcess(const std::vector<std::string>& argv, std::string log_path, bool stdin_pipe = false,
                    const std::string& err_path = {});
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig);
  // Sends `sig` and waits for the exit; SIGKILL after `grace` if it has not exited by then.
  // Returns the exit status as waitpid gives it.
  int stop(int sig, std::chrono::milliseconds grace = std::chrono::seconds(5));
  bool running();
  // How it ended, as waitpid gives it (WIFSIGNALED, WTERMSIG...), once running() is false.
  int exit_status() const { return status_; }
  std::string log() const;  // what it has written so far
  void write_stdin(const std::string& text);
  // Waits until its log holds `text` (after `from` bytes); false on timeout.
  bool wait_log(const std::string& text, std::chrono::milliseconds timeout, std::size_t from = 0) const;

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  int stdin_ = -1;  // the write end of its stdin pipe
  std::string log_path_;
};

// A TCP port on 127.0.0.1 that nothing listens on right now.
int free_port();

// What the test's own clients (MeshClient) use to reach its nodes: the test's default mesh key
// (see config_home()), or no CURVE for a mesh started with --insecure.
net::MeshSecurity mesh_security(bool insecure = false);

struct NodeSpec {
  std::string name;
  std::optional<std::pair<int, int>> layers;  // --layers; none: an entry point only (a memory
                                              // budget too small for any layer)...
  bool planned = false;                       // ...or, when planned, what the coordinator assigns
  // What runs `troupe` for this node (e.g. {"scripts/cross-run", "arm64"}); empty: this build's.
  std::vector<std::string> launcher = {};
};

// `troupe node` for `spec` listening at `address` (a Mesh adds --join and its extra arguments):
// one thread, stories260K unless `model` names another file, and the spec's layers or budget.
std::vector<std::string> node_argv(const NodeSpec& spec, const std::string& address, const std::string& model);

// One node per spec, each joining the first, on stories260K unless `model` names another file
// (a GGUF carrying its tokenizer). The nodes use the test's default mesh key, or none when
// extra_args holds --insecure (the tests that send raw frames).
class Mesh {
 public:
  // extra_args go to every node; node_args[i] (where given) to node i alone.
  explicit Mesh(const std::vector<NodeSpec>& nodes, const std::vector<std::string>& extra_args = {},
                const std::vector<std::vector<std::string>>& node_args = {},
                const std::string& model = {});
  ~Mesh();

  // Waits until every running node reports that the mesh serves; false on timeout.
  bool wait_serving(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  std::size_t size() const { return addresses_.size(); }
  bool insecure() const { return insecure_; }
  // How a client reaches this mesh: in-process, and as `troupe` flags.
  net::MeshSecurity security() const { return mesh_security(insecure_); }
  std::vector<std::string> client_args() const;
  const std::string& address(std::size_t i) const { return addresses_.at(i); }
  const std::string& name(std::size_t i) const { return names_.at(i); }
  BackgroundProcess& process(std::size_t i) { return *processes_.at(i); }
  // Starts one more node, joining through node `via`; returns its index.
  std::size_t add(const NodeSpec& node, std::size_t via, const std::vector<std::string>& args = {});
  // Starts node i again (after it was stopped), at the same address, joining through `via`.
  void restart(std::size_t i, std::size_t via);
  std::string logs() const;  // every node's log, headed by its name

 private:
  void start(std::size_t i, std::optional<std::size_t> via);
  std::vector<NodeSpec> specs_;
  std::vector<std::vector<std::string>> args_;  // per node, beyond the spec
  std::string model_;
  bool insecure_ = false;
  std::vector<std::string> names_;
  std::vector<std::string> addresses_;
  std::vector<std::unique_ptr<BackgroundProcess>> processes_;
  std::vector<std::string> old_logs_;  // of earlier runs of each node
  std::string dir_;
};

// Asks node `node` for its status until `ok` holds for it, and returns that status; after
// `timeout`, fails the test with the mesh's logs.
wire::Status wait_status(Mesh& mesh, std::size_t node, const std::function<bool(const wire::Status&)>& ok,
                         std::chrono::milliseconds timeout = std::chrono::seconds(20));
// The mesh serves through a plan of `stages` stages.
bool serving_with(const wire::Status& s, std::size_t stages);
// Sends `request` through node `entry` and returns the answer's text; once `kill_after` pieces of
// it have come, node `victim` is killed (SIGKILL). Fails the test unless the kill happened
// mid-answer and the answer ended as done.
std::string answer_killing(Mesh& mesh, std::size_t entry, const wire::GenerateRequest& request, std::size_t victim,
                           int kill_after);

// stories260K's model and tokenizer paths.
std::string stories_model();
std::string stories_tokenizer();

}  // namespace troupe::test
