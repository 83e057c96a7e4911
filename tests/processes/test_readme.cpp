// The README's command blocks that run on one machine, run as written: `build/troupe` is this
// build's, the ports are free ones, and each block's answer is what `troupe run` prints.
// (The two-machine block runs between network namespaces: test_two_machines.cpp.)
#include <catch2/catch.hpp>
#include <regex>

#include "support/nodes.hpp"
#include "support/process.hpp"

using troupe::test::read_all;
using troupe::test::run_process;
using troupe::test::run_troupe;
using troupe::test::shared_dir;

namespace {

// The block after the README's "<!-- readme-test: NAME -->" marker.
std::string readme_block(const std::string& name) {
  const std::string readme = read_all(std::string(TROUPE_SOURCE_DIR) + "/README.md");
  const std::size_t marker = readme.find("<!-- readme-test: " + name + " ");
  REQUIRE(marker != std::string::npos);
  const std::size_t open = readme.find("```\n", marker);
  const std::size_t close = readme.find("```", open + 4);
  REQUIRE(close != std::string::npos);
  return readme.substr(open + 4, close - open - 4);
}

// Runs a block in bash from the source folder (so model names resolve through ../shared), with
// this build's executable, free ports for the README's 76xx ones, a configuration folder of its
// own, and every process it started in the background stopped at the end.
troupe::test::ProcessResult run_block(std::string block) {
  block = std::regex_replace(block, std::regex("build/troupe"), TROUPE_BINARY);
  for (const char* port : {"7611", "7612", "7613"}) {
    block = std::regex_replace(block, std::regex(port), std::to_string(troupe::test::free_port()));
  }
  const troupe::test::TempDir home;
  const std::string script = "set -e; cd '" TROUPE_SOURCE_DIR "'\n"
                             "trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT\n" + block;
  return run_process({"/bin/bash", "-c", script},
                     {{"XDG_CONFIG_HOME", home / "config"}, {"XDG_CACHE_HOME", home / "cache"},
                      {"TROUPE_MODELS", shared_dir() + "/models"}},
                     "", 120);
}

}  // namespace

TEST_CASE("the README's one-machine and mesh blocks run as written and agree", "[cli]") {
  const auto reference = run_troupe({"run", "stories260K", "-t", "0", "-i", "Once upon a time"},
                                    {{"TROUPE_MODELS", shared_dir() + "/models"}});
  REQUIRE(reference.exit_code == 0);
  REQUIRE(reference.out.rfind("Once upon a time", 0) == 0);

  const auto one = run_block(readme_block("one-machine"));
  INFO(one.err);
  CHECK(one.exit_code == 0);
  CHECK(one.out == reference.out);

  const auto mesh = run_block(readme_block("mesh"));
  INFO(mesh.err);
  CHECK(mesh.exit_code == 0);
  CHECK(mesh.out.find("members:") != std::string::npos);  // troupe status
  const std::string& answer = reference.out;
  REQUIRE(mesh.out.size() >= answer.size());
  CHECK(mesh.out.substr(mesh.out.size() - answer.size()) == answer);  // troupe generate, last
}
