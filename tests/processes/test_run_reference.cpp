// `troupe run` must print exactly what llama2.c's `run` prints (../shared/reference).
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/process.hpp"
#include "troupe/kernels/kernels.hpp"

using troupe::test::run_troupe;
using troupe::test::shared_dir;

namespace {
std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
std::vector<std::string> stories_args() {
  const std::string dir = shared_dir() + "/models/stories260K";
  return {"run", dir + "/stories260K.bin", "-z", dir + "/tok512.bin"};
}
}  // namespace

TEST_CASE("troupe run matches llama2.c on every reference case", "[run][reference]") {
  std::ifstream f(shared_dir() + "/reference/stories260K-cases.json");
  REQUIRE(f.good());
  const auto cases = nlohmann::json::parse(f);
  REQUIRE(cases.size() >= 6);
  // Every kernel path this CPU has must give the same bytes.
  std::vector<std::string> isas;
  for (auto isa : troupe::kernels::kIsasBestFirst) {
    if (troupe::kernels::isa_available(isa)) isas.emplace_back(troupe::kernels::isa_name(isa));
  }
  for (const std::string& isa : isas) {
    for (const auto& c : cases) {
      auto args = stories_args();
      for (const std::string& a :
           {std::string("-t"), fmt(c["temperature"]), std::string("-p"), fmt(c["topp"]),
            std::string("-s"), std::to_string(c["seed"].get<long>()), std::string("-n"),
            std::to_string(c["steps"].get<int>()), std::string("-i"), c["prompt"].get<std::string>()}) {
        args.push_back(a);
      }
      const auto r = run_troupe(args, {{"TROUPE_ISA", isa}});
      INFO("isa " << isa << ", prompt '" << c["prompt"].get<std::string>() << "', t "
                  << c["temperature"] << ", seed " << c["seed"] << "\nstderr: " << r.err);
      REQUIRE(r.exit_code == 0);
      CHECK(r.out == c["expected_stdout"].get<std::string>());
    }
  }
}

TEST_CASE("troupe run --speculate lookup prints llama2.c's texts, and how many guesses held", "[run][speculation]") {
  std::ifstream f(shared_dir() + "/reference/stories260K-cases.json");
  const auto cases = nlohmann::json::parse(f);
  for (const auto& c : cases) {
    auto args = stories_args();
    for (const std::string& a :
         {std::string("-t"), fmt(c["temperature"]), std::string("-p"), fmt(c["topp"]), std::string("-s"),
          std::to_string(c["seed"].get<long>()), std::string("-n"), std::to_string(c["steps"].get<int>()),
          std::string("-i"), c["prompt"].get<std::string>(), std::string("--speculate"), std::string("lookup")}) {
      args.push_back(a);
    }
    const auto r = run_troupe(args);
    INFO("prompt '" << c["prompt"].get<std::string>() << "', t " << c["temperature"] << "\nstderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out == c["expected_stdout"].get<std::string>());
    CHECK(r.err.find("guesses accepted") != std::string::npos);
  }
  auto bad = stories_args();
  for (const char* a : {"-i", "Once", "--speculate", "lookup", "--draft-tokens", "0"}) bad.emplace_back(a);
  const auto r = run_troupe(bad);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--draft-tokens") != std::string::npos);
}

TEST_CASE("statistics go to stderr only", "[run]") {
  auto args = stories_args();
  for (const char* a : {"-t", "0", "-n", "20", "-i", "Once"}) args.emplace_back(a);
  const auto r = run_troupe(args);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("tok/s") == std::string::npos);
  CHECK(r.err.find("tok/s") != std::string::npos);
  CHECK(r.err.find("peak RSS") != std::string::npos);
  CHECK(r.out.back() == '\n');
}

TEST_CASE("positions counted by -n include the prompt", "[run]") {
  auto args = stories_args();
  for (const char* a : {"-t", "0", "-n", "3", "-i", "Lily and Tom went to the beach"}) {
    args.emplace_back(a);
  }
  // Three positions print the first three pieces after BOS: the prompt cut short, as run.c.
  const auto r = run_troupe(args);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.size() < std::string("Lily and Tom went").size());
  CHECK(std::string("Lily and Tom went to the beach").rfind(r.out.substr(0, r.out.size() - 1), 0) == 0);
}

TEST_CASE("a named model is found in the shared models directory", "[run]") {
  const auto r = run_troupe({"run", "stories260K", "-t", "0", "-n", "30"},
                            {{"TROUPE_MODELS", shared_dir() + "/models"}});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.rfind("Once upon a time", 0) == 0);
}

TEST_CASE("chat mode answers each turn and ends with its input", "[run][chat]") {
  auto args = stories_args();
  for (const char* a : {"-m", "chat", "-t", "0", "-n", "200", "-y", "You tell stories."}) {
    args.emplace_back(a);
  }
  const auto r = run_troupe(args, {}, "Tell me about a cat\nAnd a dog\n");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.rfind("User: Assistant: ", 0) == 0);  // the first user line comes from stdin
  // Deterministic: the same conversation gives the same transcript.
  CHECK(run_troupe(args, {}, "Tell me about a cat\nAnd a dog\n").out == r.out);
}
