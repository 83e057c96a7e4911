// A swarm of small boards: `troupe node`s that may each hold 48 MiB in all (`--mem-budget 48M`
// covers the whole process: code, threads, buffers, weights, caches) run together an f32 model
// none of them could hold, answer as `troupe run` does, and keep their peak resident memory
// (VmHWM) within the budget. When one is killed the rest re-plan, since they still hold the
// model; when another is, they say that they cannot.
//
// The model is 9 layers of 5 MiB (dim 320) with a 2048-token vocabulary: stories15M's own shape
// cannot be spread over 48 MiB nodes, since its classifier (tied to the embedding) is 35 MiB, one
// matrix that the last stage must hold whole beside the process itself (docs/mesh.md).
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/nodes.hpp"
#include "support/process.hpp"

using namespace troupe::test;
using namespace std::chrono_literals;
namespace wire = troupe::wire;

namespace {

constexpr uint64_t kBudget = uint64_t(48) << 20;

// The peak resident bytes of a running process (VmHWM); 0 when it cannot be read.
uint64_t peak_rss(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:") {
      uint64_t kib = 0;
      status >> kib;
      return kib * 1024;
    }
    status.ignore(1 << 12, '\n');
  }
  return 0;
}

// Every running node's peak stayed within the budget.
void check_peaks(Mesh& mesh, const std::vector<std::size_t>& nodes) {
  for (std::size_t i : nodes) {
    INFO("node " << mesh.name(i));
    CHECK(peak_rss(mesh.process(i).pid()) <= kBudget);
  }
}

// `troupe status` shows each member's budget and what it holds with no stage.
void check_status_lines(Mesh& mesh) {
  std::vector<std::string> status = {"status", "--peer", mesh.address(0)};
  for (const auto& a : mesh.client_args()) status.push_back(a);
  const ProcessResult shown = run_troupe(status);
  CHECK(shown.exit_code == 0);
  for (std::size_t i = 0; i < mesh.size(); i++) {
    const auto line = shown.out.find("\n  " + mesh.name(i) + " ");
    REQUIRE(line != std::string::npos);
    const std::string text = shown.out.substr(line, shown.out.find('\n', line + 1) - line);
    INFO(text);
    CHECK(text.find("budget 48 MiB (") != std::string::npos);
    CHECK(text.find(" MiB without a stage)") != std::string::npos);
  }
}

// `count` clients run `generate_argv` at once; each gets `expected` or the budget's refusal.
// Returns how many were answered.
int answer_at_once(const std::vector<std::string>& generate_argv, const std::string& expected, const TempDir& dir,
                   int count) {
  std::vector<std::unique_ptr<BackgroundProcess>> clients;
  for (int k = 0; k < count; k++) {
    clients.push_back(std::make_unique<BackgroundProcess>(generate_argv, dir / ("out" + std::to_string(k)), false,
                                                          dir / ("err" + std::to_string(k))));
  }
  int answered = 0;
  for (int k = 0; k < count; k++) {
    while (clients[k]->running()) std::this_thread::sleep_for(50ms);
    const int status = clients[k]->exit_status();
    const std::string err = read_all(dir / ("err" + std::to_string(k)));
    INFO("client " << k << ": " << err);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      CHECK(read_all(dir / ("out" + std::to_string(k))) == expected);
      answered++;
    } else {
      CHECK(err.find("memory budget (48 MiB) holds no more sessions") != std::string::npos);
    }
  }
  return answered;
}

}  // namespace

TEST_CASE("48 MiB nodes run a model none could hold, within their budgets, and re-plan when one dies",
          "[mesh][budget]") {
  const TempDir dir;
  const std::string model = dir / "swarm.gguf";
  REQUIRE(run_troupe({"synth", "--dim", "320", "--hidden", "896", "--layers", "9", "--heads", "5", "--kv-heads", "5",
                      "--vocab", "2048", "--seq-len", "256", "--seed", "11", "--out", model})
              .exit_code == 0);
  const std::vector<std::string> ask = {"-t", "1", "-s", "7", "-n", "200", "-i", "Once upon a time"};
  std::vector<std::string> run = {"run", model};
  run.insert(run.end(), ask.begin(), ask.end());
  const ProcessResult alone = run_troupe(run);
  REQUIRE(alone.exit_code == 0);

  Mesh mesh({{"a", std::nullopt, true}, {"b", std::nullopt, true}, {"c", std::nullopt, true}, {"d", std::nullopt, true}},
            {"--mem-budget", "48M", "--throughput", "10"}, {}, model);
  const wire::Status planned = wait_status(mesh, 0, [](const wire::Status& s) { return serving_with(s, 4); });
  INFO(mesh.logs());
  // No member could hold the model alone, and every member measured what it holds with no stage.
  for (const auto& m : planned.members) {
    CHECK(m.mem_budget == kBudget);
    CHECK(m.base_rss > 0);
    CHECK(m.base_rss < kBudget);
    REQUIRE(m.layers);
    CHECK(m.layers->size() < 9);
  }
  auto generate_args = [&](std::size_t entry) {
    std::vector<std::string> args = {"generate", "--peer", mesh.address(entry)};
    const auto access = mesh.client_args();
    args.insert(args.end(), access.begin(), access.end());
    args.insert(args.end(), ask.begin(), ask.end());
    return args;
  };
  auto generate = [&](std::size_t entry) { return run_troupe(generate_args(entry)); };
  check_status_lines(mesh);
  const ProcessResult four = generate(0);
  INFO("stderr: " << four.err);
  REQUIRE(four.exit_code == 0);
  CHECK(four.out == alone.out);
  check_peaks(mesh, {0, 1, 2, 3});

  // Eight answers at once: each stage takes the sessions its budget holds (each has its own KV
  // cache and working buffers) and refuses the others as busy, naming the budget; none overruns.
  std::vector<std::string> argv = generate_args(0);
  argv.insert(argv.begin(), TROUPE_BINARY);
  const int answered = answer_at_once(argv, alone.out, dir, 8);
  CHECK(answered >= 1);
  INFO(answered << " of 8 answered at once");
  check_peaks(mesh, {0, 1, 2, 3});

  // One gone: three 48 MiB nodes still hold the 9 layers.
  mesh.process(1).stop(SIGKILL);
  wait_status(mesh, 0, [](const wire::Status& s) { return serving_with(s, 3); });
  const ProcessResult three = generate(0);
  INFO("stderr: " << three.err);
  REQUIRE(three.exit_code == 0);
  CHECK(three.out == alone.out);
  check_peaks(mesh, {0, 2, 3});

  // Two gone: two cannot, and the mesh says so rather than overrun a budget.
  mesh.process(2).stop(SIGKILL);
  const wire::Status short_of = wait_status(mesh, 0, [](const wire::Status& s) {
    return !s.serving && s.problem.find("memory budgets hold") != std::string::npos;
  });
  CHECK(short_of.problem.find("of the 9 layers") != std::string::npos);
  const ProcessResult refused = generate(0);
  CHECK(refused.exit_code != 0);
  CHECK(refused.err.find("memory budgets hold") != std::string::npos);
}
