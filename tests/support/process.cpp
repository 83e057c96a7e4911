#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <fstream>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace troupe::test {

namespace {

// The environment a child gets: ours, with `env` set over it.
std::vector<std::string> child_environment(const std::vector<std::pair<std::string, std::string>>& env) {
  std::vector<std::string> envs;
  for (char** e = environ; *e; e++) {
    std::string s = *e;
    bool overridden = false;
    for (auto& [k, v] : env) overridden |= s.rfind(k + "=", 0) == 0;
    if (!overridden) envs.push_back(s);
  }
  for (auto& [k, v] : env) envs.push_back(k + "=" + v);
  return envs;
}

// Feeds `input` to the child's stdin (in[1]) and collects its stdout and stderr until both
// close; kills it once `timeout_s` have passed.
void exchange(pid_t pid, int in[2], int out[2], int err[2], const std::string& input, int timeout_s,
              ProcessResult& r) {
  std::size_t written = 0;
  if (input.empty()) {
    close(in[1]);
    in[1] = -1;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool killed = false;
  int open_fds = 2;
  while (open_fds > 0) {
    pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
    int n = poll(fds, in[1] >= 0 ? 3 : 2, 100);
    if (std::chrono::steady_clock::now() > deadline && !killed) {
      kill(pid, SIGKILL);
      killed = true;
    }
    if (n <= 0) continue;
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        (i == 0 ? r.out : r.err).append(buf, got);
      } else {
        close(fds[i].fd);
        (i == 0 ? out[0] : err[0]) = -1;
        open_fds--;
      }
    }
    if (in[1] >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t put = (fds[2].revents & POLLOUT)
                        ? write(in[1], input.data() + written, input.size() - written)
                        : -1;
      if (put > 0) written += put;
      if (put <= 0 || written == input.size()) {
        close(in[1]);
        in[1] = -1;
      }
    }
  }
  if (in[1] >= 0) close(in[1]);
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& env,
                          const std::string& input, int timeout_s) {
  signal(SIGPIPE, SIG_IGN);  // a child that exits without reading its stdin must not kill us
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
    throw std::runtime_error("pipe failed");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);

  const std::vector<std::string> envs = child_environment(env);
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (auto& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  pid_t pid;
  int rc = posix_spawn(&pid, argv[0].c_str(), &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (rc != 0) throw std::runtime_error("spawn " + argv[0] + ": " + std::strerror(rc));

  ProcessResult r;
  exchange(pid, in, out, err, input, timeout_s, r);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  return r;
}

ProcessResult run_troupe(const std::vector<std::string>& args,
                         const std::vector<std::pair<std::string, std::string>>& env,
                         const std::string& input) {
  std::vector<std::string> argv = {TROUPE_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, env, input);
}

std::string shared_dir() { return TROUPE_SHARED_DIR; }

namespace {

// Every test process gets a configuration folder of its own, so that the mesh key `troupe`
// creates and reads by default ($XDG_CONFIG_HOME/troupe/mesh.key) is one per test, shared by the
// nodes and clients the test starts (they inherit the environment), and never the user's
// ~/.config/troupe. Set before any test runs, removed when the process exits (a temp_dir).
std::string isolated_config_home() {
  static std::string path;
  if (path.empty()) {
    path = temp_dir();
    setenv("XDG_CONFIG_HOME", path.c_str(), 1);
  }
  return path;
}

// Every folder temp_dir() made, removed when the test process exits: a test that fails, or keeps
// its nodes' logs for its messages, leaves nothing behind in /tmp. (Never destroyed, so that it
// outlives every static that may still make a folder.)
struct MadeFolders {
  std::mutex mutex;
  std::vector<std::string> paths;
};
MadeFolders& made_folders() {
  static MadeFolders* folders = [] {
    std::atexit([] {
      std::error_code ignored;
      for (const auto& p : made_folders().paths) std::filesystem::remove_all(p, ignored);
    });
    return new MadeFolders;
  }();
  return *folders;
}
const std::string config_home_at_start = isolated_config_home();

}  // namespace

std::string config_home() { return isolated_config_home(); }

std::string temp_dir() {
  std::string tmpl = "/tmp/troupe-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  MadeFolders& made = made_folders();
  const std::lock_guard lock(made.mutex);
  made.paths.push_back(tmpl);
  return tmpl;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace troupe::test
