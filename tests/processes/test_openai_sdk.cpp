// The OpenAI Node SDK (from npm, into the build tree) runs unchanged against a node:
// responses.create whole and streamed, chat.completions.create whole and streamed (with
// stream_options.include_usage), completions.create; each answers what the node's own HTTP answers
// are (which test_http.cpp holds to `troupe generate` and `troupe chat`). Without node or npm, or
// when npm cannot reach its registry, the test says so and CTest counts it skipped.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "support/api_checks.hpp"
#include "support/http.hpp"
#include "support/nodes.hpp"
#include "support/process.hpp"

using namespace troupe::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kKey = "k-0123456789";

// `name`'s path on $PATH; empty when it is not there.
std::string on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  for (std::size_t at = 0; at <= dirs.size();) {
    const auto colon = std::min(dirs.find(':', at), dirs.size());
    const fs::path candidate = fs::path(dirs.substr(at, colon - at)) / name;
    if (colon > at && access(candidate.c_str(), X_OK) == 0) return candidate.string();
    at = colon + 1;
  }
  return {};
}

// The folder in the build tree that holds the SDK and the client script; empty, with the reason
// printed as a skip, when it cannot be had.
std::string sdk_folder() {
  const fs::path dir = fs::path(TROUPE_BUILD_DIR) / "npm";
  if (!fs::exists(dir / "node_modules" / "openai" / "package.json")) {
    fs::create_directories(dir);
    const ProcessResult r = run_process({on_path("npm"), "install", "--prefix", dir.string(), "openai@7", "--no-audit",
                                         "--no-fund", "--loglevel=error"},
                                        {}, "", 300);
    if (r.exit_code != 0) {
      std::cout << "TROUPE-SKIP: npm could not install the OpenAI SDK (openai@7) into " << dir.string() << ": "
                << r.err.substr(0, 300) << std::endl;
      return {};
    }
  }
  fs::copy_file(fs::path(TROUPE_SOURCE_DIR) / "tests" / "clients" / "openai_sdk.mjs", dir / "openai_sdk.mjs",
                fs::copy_options::overwrite_existing);
  return dir.string();
}

std::string text_of_response(const json& r) { return r["output"][0]["content"][0]["text"]; }

}  // namespace

TEST_CASE("the OpenAI Node SDK runs unchanged against a node: responses, chat completions, completions",
          "[http][sdk]") {
  const std::string node_js = on_path("node");
  if (node_js.empty() || on_path("npm").empty()) {
    std::cout << "TROUPE-SKIP: no node and npm (Node.js) on this machine to run the OpenAI SDK with" << std::endl;
    return;
  }
  const std::string dir = sdk_folder();
  if (dir.empty()) return;
  TempDir tmp;
  const int http = free_port();
  BackgroundProcess node({TROUPE_BINARY, "node", "--listen", "127.0.0.1:" + std::to_string(free_port()), "--model",
                          stories_model(), "--layers", "0:5", "--threads", "1", "--http", std::to_string(http),
                          "--api-key", kKey},
                         tmp / "node.log");
  REQUIRE(wait_healthy(http));
  const ProcessResult sdk = run_process({node_js, dir + "/openai_sdk.mjs", "http://127.0.0.1:" + std::to_string(http)});
  INFO("sdk stderr: " << sdk.err << "\nnode log:\n" << node.log());
  REQUIRE(sdk.exit_code == 0);
  const json got = json::parse(sdk.out);

  const HttpHeaders key = {{"Authorization", "Bearer " + kKey}};
  const json response = post(http, "/v1/responses", {{"input", "Hi there"}, {"temperature", 0}, {"max_output_tokens", 40}}, 200, key);
  CHECK(got["responses"] == text_of_response(response));
  CHECK(got["responses_status"] == response["status"]);
  CHECK(got["responses_stream"] == got["responses"]);
  CHECK(got["responses_stream_status"] == response["status"]);

  const json chat = post(http, "/v1/chat/completions",
                         {{"messages", {{{"role", "user"}, {"content", "Hi there"}}}}, {"temperature", 0}, {"max_tokens", 40}},
                         200, key);
  CHECK(got["chat"] == chat["choices"][0]["message"]["content"]);
  CHECK(got["chat_usage"] == chat["usage"]);
  CHECK(got["chat_stream"] == got["chat"]);
  CHECK(got["chat_stream_usage"] == chat["usage"]);
  CHECK(!got["chat"].get<std::string>().empty());

  const json completion = post(http, "/v1/completions", {{"prompt", "Once upon a time"}, {"temperature", 0}, {"max_tokens", 30}}, 200, key);
  CHECK(got["completion"] == completion["choices"][0]["text"]);
  CHECK(!got["completion"].get<std::string>().empty());
}
