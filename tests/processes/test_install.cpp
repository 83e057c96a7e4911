// What a user meets before any model: `troupe --version`, usage errors that point to the
// command's help, and `make install` (cmake --install) placing a working executable.
#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>

#include "support/process.hpp"

using troupe::test::run_process;
using troupe::test::run_troupe;

TEST_CASE("troupe --version names the version and the commit", "[cli]") {
  const auto r = run_troupe({"--version"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  // "troupe 0.1.0 (commit 0123456789ab)", "-modified" when built with local changes; "unknown"
  // outside a git checkout.
  CHECK(std::regex_match(r.out, std::regex(R"(troupe \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}(-modified)?|unknown)\)\n)")));
}

TEST_CASE("a usage error names the words as typed and the command's own help", "[cli][errors]") {
  const auto extras = run_troupe({"generate", "--peer", "127.0.0.1:1", "-i", "hi", "--temp", "0.5"});
  CHECK(extras.exit_code == 2);
  CHECK(extras.err == "troupe: unexpected arguments: --temp 0.5 (see troupe generate --help)\n");
  const auto value = run_troupe({"status", "--peer"});
  CHECK(value.exit_code == 2);
  CHECK(value.err.find("--peer") != std::string::npos);
  CHECK(value.err.find("(see troupe status --help)\n") != std::string::npos);
  // The help it points to is there.
  const auto help = run_troupe({"generate", "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("--peer") != std::string::npos);
}

TEST_CASE("make install places a troupe that runs", "[cli]") {
  const troupe::test::TempDir prefix;
  const auto install = run_process({TROUPE_CMAKE, "--install", TROUPE_BUILD_DIR, "--prefix", prefix.path});
  INFO(install.out << install.err);
  REQUIRE(install.exit_code == 0);
  const std::string installed = prefix / "bin/troupe";
  REQUIRE(std::filesystem::exists(installed));
  CHECK(std::filesystem::exists(prefix / "share/doc/troupe/README.md"));
  const auto version = run_process({installed, "--version"});
  CHECK(version.exit_code == 0);
  CHECK(version.out == run_troupe({"--version"}).out);
}
