// Runs a child process for tests that exercise the real `troupe` executable.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace troupe::test {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the signal that ended it, if any
  std::string out;
  std::string err;
};

// Runs argv (argv[0] is a path) with extra environment variables, feeding `input` to stdin,
// and collects everything it writes. Kills it after timeout_s seconds (signal = SIGKILL).
ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& env = {},
                          const std::string& input = "", int timeout_s = 60);

// `troupe` with the given arguments.
ProcessResult run_troupe(const std::vector<std::string>& args,
                         const std::vector<std::pair<std::string, std::string>>& env = {},
                         const std::string& input = "");

// ../shared, beside the checkout.
std::string shared_dir();
// This test process's own $XDG_CONFIG_HOME (set when it starts): the default mesh key of every
// `troupe` it runs is config_home() + "/troupe/mesh.key", never the user's.
std::string config_home();
// A fresh empty directory for a test's files, removed when the test process exits.
std::string temp_dir();

// A temp directory removed at the end of the test.
struct TempDir {
  std::string path = temp_dir();
  ~TempDir();
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

std::string read_all(const std::string& path);
void write_all(const std::string& path, const std::string& bytes);

}  // namespace troupe::test
