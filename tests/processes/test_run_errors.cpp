// Bad input: one clear line on stderr naming what is wrong, exit code 2, never a crash.
#include <catch2/catch.hpp>
#include <fstream>

#include "support/process.hpp"

using troupe::test::run_troupe;
using troupe::test::shared_dir;

namespace {
const std::string kDir = shared_dir() + "/models/stories260K";

void expect_bad_input(const std::vector<std::string>& args, const std::string& names) {
  const auto r = run_troupe(args);
  INFO("args: " << Catch::Detail::stringify(args) << "\nstderr: " << r.err);
  CHECK(r.signal == 0);
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find(names) != std::string::npos);
}

std::string copy_prefix(const std::string& from, std::size_t n, const std::string& name) {
  std::ifstream f(from, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  const std::string path = troupe::test::temp_dir() + "/" + name;
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::min(n, bytes.size()));
  return path;
}
}  // namespace

TEST_CASE("missing and broken model files", "[run][errors]") {
  expect_bad_input({"run", "/nonexistent/model.bin", "-z", kDir + "/tok512.bin"},
                   "/nonexistent/model.bin");
  const std::string truncated = copy_prefix(kDir + "/stories260K.bin", 50000, "truncated.bin");
  expect_bad_input({"run", truncated, "-z", kDir + "/tok512.bin"}, truncated);
  const std::string tiny = copy_prefix(kDir + "/stories260K.bin", 12, "tiny.bin");
  expect_bad_input({"run", tiny, "-z", kDir + "/tok512.bin"}, "too small");
  const std::string empty = copy_prefix(kDir + "/stories260K.bin", 0, "empty.bin");
  expect_bad_input({"run", empty, "-z", kDir + "/tok512.bin"}, empty);
  // The tokenizer given where the model belongs.
  expect_bad_input({"run", kDir + "/tok512.bin", "-z", kDir + "/tok512.bin"}, "tok512.bin");
  const std::string no_models = troupe::test::temp_dir();
  expect_bad_input({"run", no_models, "-z", kDir + "/tok512.bin"}, no_models);
}

TEST_CASE("missing and broken tokenizer files", "[run][errors]") {
  expect_bad_input({"run", kDir + "/stories260K.bin", "-z", "/nonexistent/tok.bin"},
                   "/nonexistent/tok.bin");
  const std::string cut = copy_prefix(kDir + "/tok512.bin", 1000, "tok.bin");
  expect_bad_input({"run", kDir + "/stories260K.bin", "-z", cut}, cut);
  // A tokenizer with fewer tokens than the model's vocabulary (stories260K as its own tokenizer).
  expect_bad_input({"run", kDir + "/stories260K.bin", "-z", kDir + "/stories260K.bin"},
                   "stories260K.bin");
}

TEST_CASE("bad flags and flag values", "[run][errors]") {
  const std::vector<std::string> base = {"run", kDir + "/stories260K.bin", "-z", kDir + "/tok512.bin"};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  expect_bad_input(with({"-t", "warm"}), "-t");
  expect_bad_input(with({"-p", "x"}), "-p");
  expect_bad_input(with({"-n", "many"}), "-n");
  expect_bad_input(with({"-s", "seed"}), "-s");
  expect_bad_input(with({"-m", "poem"}), "-m");
  expect_bad_input(with({"--threads", "-3"}), "--threads");
  expect_bad_input(with({"--bogus"}), "--bogus");
  expect_bad_input(with({"-t"}), "-t");
  expect_bad_input({"run"}, "model");
  expect_bad_input({}, "subcommand");
  expect_bad_input({"fly"}, "fly");
}

TEST_CASE("a prompt longer than the context", "[run][errors]") {
  std::string prompt;
  for (int i = 0; i < 400; i++) prompt += "the dog ";  // over 512 tokens
  expect_bad_input({"run", kDir + "/stories260K.bin", "-z", kDir + "/tok512.bin", "-i", prompt},
                   "context");
}
