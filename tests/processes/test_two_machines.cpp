// The README's "Two machines" commands, run as written between two separate hosts (network
// namespaces, support/hosts.hpp): A starts a node and invites, B joins with the token and asks
// through it, and the answer is what `troupe run` prints. Each host has a configuration folder
// of its own (its own default mesh key), as two machines would.
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

#include "support/hosts.hpp"
#include "support/nodes.hpp"
#include "support/process.hpp"

using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

struct Step {
  std::size_t host;      // 0: A, 1: B
  std::string command;   // as the README writes it, without the prompt and the trailing '&'
  bool background = false;
};

// The block that follows the README's "<!-- two-machines" marker.
std::vector<Step> readme_steps() {
  const std::string readme = read_all(std::string(TROUPE_SOURCE_DIR) + "/README.md");
  const std::size_t marker = readme.find("<!-- two-machines");
  REQUIRE(marker != std::string::npos);
  const std::size_t open = readme.find("```\n", marker);
  const std::size_t close = readme.find("```", open + 4);
  REQUIRE(close != std::string::npos);
  std::vector<Step> steps;
  std::istringstream lines(readme.substr(open + 4, close - open - 4));
  static const std::regex line(R"(([AB])\$ (.*?)( &)?)");
  for (std::string text; std::getline(lines, text);) {
    std::smatch m;
    REQUIRE(std::regex_match(text, m, line));
    steps.push_back({m[1] == "A" ? 0u : 1u, m[2], m[3].matched});
  }
  return steps;
}

// A command line of the README as host `host` runs it: `troupe` is this build's, model names are
// found in ../shared/models, and each host keeps its keys and caches in a folder of its own.
std::vector<std::string> as_run(const Hosts& hosts, std::size_t host, const std::string& command,
                                const std::string& home) {
  std::string line = std::regex_replace(command, std::regex("^troupe "), std::string(TROUPE_BINARY) + " ");
  return hosts.command(host, {"/usr/bin/env", "XDG_CONFIG_HOME=" + home + "/config",
                              "XDG_CACHE_HOME=" + home + "/cache", "TROUPE_MODELS=" + shared_dir() + "/models",
                              "/bin/sh", "-c", line});
}

}  // namespace

TEST_CASE("the README's two-machine commands join two hosts and answer as troupe run does",
          "[hosts][security]") {
  if (!hosts_or_skip()) return;
  Hosts hosts(2);
  TempDir dir;
  const std::string homes[] = {dir / "A", dir / "B"};
  std::vector<std::unique_ptr<BackgroundProcess>> nodes;
  std::string token, answer, status;
  for (const Step& step : readme_steps()) {
    std::string command = step.command;
    if (!token.empty()) command = std::regex_replace(command, std::regex("TOKEN"), token);
    const auto argv = as_run(hosts, step.host, command, homes[step.host]);
    INFO((step.host ? "B$ " : "A$ ") << command);
    if (step.background) {
      nodes.push_back(std::make_unique<BackgroundProcess>(argv, dir / ("node" + std::to_string(nodes.size()) + ".log")));
      REQUIRE(nodes.back()->wait_log("listening on", 30s));
      continue;
    }
    // A client's command: retried while the mesh forms (a user would wait and try again).
    ProcessResult r;
    for (int attempt = 0; attempt < 60; attempt++) {
      r = hosts.run(step.host, argv);
      // Status is read once the mesh serves and lists both machines: A serves alone before B's
      // join has reached it (the user would look again a moment later).
      const bool formed = command.find(" status ") == std::string::npos ||
                          (r.out.find("not serving") == std::string::npos &&
                           r.out.find(hosts.ip(0) + ":7000") != std::string::npos &&
                           r.out.find(hosts.ip(1) + ":7000") != std::string::npos);
      if (r.exit_code == 0 && formed) break;
      std::this_thread::sleep_for(500ms);
    }
    INFO("stdout: " << r.out << "\nstderr: " << r.err << "\nA: " << nodes.at(0)->log()
                    << (nodes.size() > 1 ? "\nB: " + nodes[1]->log() : std::string()));
    REQUIRE(r.exit_code == 0);
    if (command.find(" invite ") != std::string::npos) {
      std::smatch m;
      REQUIRE(std::regex_search(r.out, m, std::regex("troupe1_[a-z2-7]+")));
      token = m[0];
    } else if (command.find(" status ") != std::string::npos) {
      status = r.out;
    } else if (command.find(" generate ") != std::string::npos) {
      answer = r.out;
    }
  }
  REQUIRE_FALSE(token.empty());
  // Both machines are members, known by their own addresses (never 0.0.0.0 or loopback).
  CHECK(status.find(hosts.ip(0) + ":7000") != std::string::npos);
  CHECK(status.find(hosts.ip(1) + ":7000") != std::string::npos);
  CHECK(status.find("0.0.0.0") == std::string::npos);
  const ProcessResult reference = run_troupe(
      {"run", stories_model(), "-z", stories_tokenizer(), "-t", "0", "-i", "Once upon a time"});
  REQUIRE(reference.exit_code == 0);
  CHECK(answer == reference.out);
  // B's node took the secret from the token: it made no key file of its own.
  CHECK_FALSE(std::filesystem::exists(homes[1] + "/config/troupe/mesh.key"));
}
