// A mesh of x86-64 nodes and one arm64 node under qemu-user (scripts/cross-run arm64, the build in
// build-arm64): the arm64 stage's floats must be the x86 stages' bit for bit, so every reference
// case, entering through either architecture, prints what one x86 `troupe run` prints; and when
// the arm64 node is killed mid-answer, the x86 nodes finish the answer alone, byte-identically.
// Run by `make test-cross` after the arm64 build, never by `make test` (its binary is not in CTest).
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <sstream>
#include <string>
#include <vector>

#include "support/cases.hpp"
#include "support/nodes.hpp"
#include "support/process.hpp"

using namespace troupe::test;
using namespace std::chrono_literals;
using nlohmann::json;
namespace wire = troupe::wire;

namespace {

const std::string kCrossRun = std::string(TROUPE_SOURCE_DIR) + "/scripts/cross-run";

std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// `troupe run` on this machine for the case, the answer the mesh must give.
std::vector<std::string> run_args(const json& c) {
  return {"run", stories_model(), "-z", stories_tokenizer(), "-t", fmt(c["temperature"]), "-p", fmt(c["topp"]),
          "-s", std::to_string(c["seed"].get<long>()), "-n", std::to_string(c["steps"].get<int>()),
          "-i", c["prompt"].get<std::string>()};
}

}  // namespace

TEST_CASE("a mesh with an arm64 stage under qemu answers as troupe run does on x86", "[cross][mesh]") {
  // test-cross builds build-arm64 first; without it this test has nothing to run, which is a
  // failure, not a skip.
  REQUIRE(access((std::string(TROUPE_SOURCE_DIR) + "/build-arm64/troupe").c_str(), X_OK) == 0);
  // The middle stage is the arm64 node: activations cross x86 -> arm64 -> x86 every token.
  Mesh mesh({{"x86-first", std::pair{0, 2}},
             {"arm64-middle", std::pair{2, 4}, false, {kCrossRun, "arm64"}},
             {"x86-last", std::pair{4, 5}}});
  // qemu starts the arm64 node's actor system and CURVE keys several times slower than a host one.
  REQUIRE(mesh.wait_serving(std::chrono::seconds(90)));
  const std::string arm64_log = mesh.process(1).log();
  INFO("arm64 node's log:\n" << arm64_log);
  for (const json& c : reference_cases()) {
    const ProcessResult local = run_troupe(run_args(c));
    REQUIRE(local.exit_code == 0);
    CHECK(local.out == c["expected_stdout"].get<std::string>());
    for (std::size_t entry : {std::size_t{0}, std::size_t{1}}) {
      const ProcessResult r = run_troupe(generate_args(mesh.address(entry), c, mesh.client_args()));
      INFO("entry " << mesh.name(entry) << ", prompt '" << c["prompt"].get<std::string>() << "', seed "
                    << c["seed"] << "\nstderr: " << r.err << "\nlogs:\n" << mesh.logs());
      REQUIRE(r.exit_code == 0);
      CHECK(r.out == local.out);
    }
  }
}

TEST_CASE("the arm64 node killed mid-answer: the x86 nodes finish it, byte-identical", "[cross][mesh]") {
  REQUIRE(access((std::string(TROUPE_SOURCE_DIR) + "/build-arm64/troupe").c_str(), X_OK) == 0);
  const std::vector<std::string> settings = {"-t", "1", "-s", "42", "-n", "300", "-i", "Once upon a time"};
  std::vector<std::string> args = {"run", stories_model(), "-z", stories_tokenizer()};
  args.insert(args.end(), settings.begin(), settings.end());
  const ProcessResult undisturbed = run_troupe(args);
  REQUIRE(undisturbed.exit_code == 0);

  // Planned nodes of equal weight: the coordinator gives each a stage, and the two x86 nodes
  // re-plan the model between them when the arm64 one is gone.
  Mesh mesh({{"x86-a", std::nullopt, true}, {"arm64", std::nullopt, true, {kCrossRun, "arm64"}}, {"x86-b", std::nullopt, true}},
            {"--throughput", "10"});
  REQUIRE(mesh.wait_serving(std::chrono::seconds(90)));
  // The entry is an x86 node; wait_serving saw a plan, but the arm64 node must hold a stage in it.
  wait_status(
      mesh, 0,
      [](const wire::Status& s) {
        return s.serving && std::any_of(s.stages.begin(), s.stages.end(), [](const auto& st) { return st.node == "arm64"; });
      },
      60s);

  wire::GenerateRequest request;
  request.prompt = "Once upon a time";
  request.sampling = {1.0f, 0.9f, 42};
  request.steps = 300;
  const std::string text = answer_killing(mesh, 0, request, 1, 20);  // the arm64 node, 20 pieces in
  INFO(mesh.logs());
  CHECK(text + "\n" == undisturbed.out);
  CHECK(mesh.logs().find("re-routing") != std::string::npos);
}
