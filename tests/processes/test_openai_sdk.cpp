// OpenAI clients from npm (installed into the build tree) run unchanged against a node. The OpenAI
// Node SDK: responses.create whole and streamed, chat.completions.create whole and streamed (with
// stream_options.include_usage), completions.create. The Vercel AI SDK (its default model speaks
// /v1/responses, .chat() chat completions) and LangChain's ChatOpenAI: whole and streamed. Each
// answers what the node's own HTTP answers are (which test_http.cpp holds to `troupe generate` and
// `troupe chat`). Without node or npm, or when npm cannot reach its registry, a test says so and
// CTest counts it skipped.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>

#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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

// The clients, pinned to majors that run on Debian 12's Node.js 20 (@langchain/openai's later 1.x
// ask for Node 22).
const std::vector<std::string> kPackages = {"openai@7", "ai@6", "@ai-sdk/openai@3", "@langchain/openai@1.4.7",
                                            "@langchain/core@1"};

// The folder in the build tree that holds the clients and their scripts; empty, with the reason
// printed as a skip, when it cannot be had.
// CTest runs the two SDK tests at once: an flock on a file in the folder lets one install while the
// other waits, rather than two npm installs undoing each other's node_modules.
std::string sdk_folder() {
  const fs::path dir = fs::path(TROUPE_BUILD_DIR) / "npm";
  fs::create_directories(dir);
  const int lock = open((dir / "install.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (lock >= 0) flock(lock, LOCK_EX);
  struct Unlock {
    int fd;
    ~Unlock() {
      if (fd >= 0) close(fd);
    }
  } unlock{lock};
  const fs::path modules = dir / "node_modules";
  const bool installed = fs::exists(modules / "openai" / "package.json") && fs::exists(modules / "ai" / "package.json") &&
                         fs::exists(modules / "@langchain" / "openai" / "package.json");
  if (!installed) {
    std::vector<std::string> argv = {on_path("npm"), "install", "--prefix", dir.string()};
    argv.insert(argv.end(), kPackages.begin(), kPackages.end());
    argv.insert(argv.end(), {"--no-audit", "--no-fund", "--loglevel=error"});
    const ProcessResult r = run_process(argv, {}, "", 300);
    if (r.exit_code != 0) {
      std::cout << "TROUPE-SKIP: npm could not install the OpenAI clients into " << dir.string() << ": "
                << r.err.substr(0, 300) << std::endl;
      return {};
    }
  }
  for (const char* script : {"openai_sdk.mjs", "ai_sdks.mjs"}) {
    fs::copy_file(fs::path(TROUPE_SOURCE_DIR) / "tests" / "clients" / script, dir / script,
                  fs::copy_options::overwrite_existing);
  }
  return dir.string();
}

// A node with an HTTP door and an API key; the clients' folder. Skips (returns false) without Node.js
// or the clients.
struct SdkNode {
  std::string node_js = on_path("node");
  std::string dir;
  TempDir tmp;
  int http = free_port();
  std::unique_ptr<BackgroundProcess> node;

  bool start() {
    if (node_js.empty() || on_path("npm").empty()) {
      std::cout << "TROUPE-SKIP: no node and npm (Node.js) on this machine to run the OpenAI clients with" << std::endl;
      return false;
    }
    dir = sdk_folder();
    if (dir.empty()) return false;
    node = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{TROUPE_BINARY, "node", "--listen", "127.0.0.1:" + std::to_string(free_port()), "--model",
                                 stories_model(), "--layers", "0:5", "--threads", "1", "--http", std::to_string(http),
                                 "--api-key", kKey},
        tmp / "node.log");
    return true;
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(http); }
};

std::string text_of_response(const json& r) { return r["output"][0]["content"][0]["text"]; }

}  // namespace

TEST_CASE("the OpenAI Node SDK runs unchanged against a node: responses, chat completions, completions",
          "[http][sdk]") {
  SdkNode n;
  if (!n.start()) return;
  REQUIRE(wait_healthy(n.http));
  const ProcessResult sdk = run_process({n.node_js, n.dir + "/openai_sdk.mjs", n.base_url()});
  INFO("sdk stderr: " << sdk.err << "\nnode log:\n" << n.node->log());
  REQUIRE(sdk.exit_code == 0);
  const json got = json::parse(sdk.out);
  const int http = n.http;

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

TEST_CASE("the Vercel AI SDK and LangChain run unchanged against a node, whole and streamed", "[http][sdk]") {
  SdkNode n;
  if (!n.start()) return;
  REQUIRE(wait_healthy(n.http));
  const ProcessResult sdks = run_process({n.node_js, n.dir + "/ai_sdks.mjs", n.base_url(), kKey});
  INFO("clients' stderr: " << sdks.err << "\nnode log:\n" << n.node->log());
  REQUIRE(sdks.exit_code == 0);
  const json got = json::parse(sdks.out);

  const HttpHeaders key = {{"Authorization", "Bearer " + kKey}};
  const json response = post(n.http, "/v1/responses", {{"input", "Hi there"}, {"temperature", 0}, {"max_output_tokens", 40}}, 200, key);
  const std::string answer = text_of_response(response);
  const json chat = post(n.http, "/v1/chat/completions",
                         {{"messages", {{{"role", "user"}, {"content", "Hi there"}}}}, {"temperature", 0}, {"max_tokens", 40}},
                         200, key);
  const std::string chat_answer = chat["choices"][0]["message"]["content"];
  REQUIRE(!answer.empty());
  CHECK(got["vercel_responses"] == answer);
  CHECK(got["vercel_responses_usage"] == response["usage"]["output_tokens"]);
  CHECK(got["vercel_responses_stream"] == answer);
  CHECK(got["vercel_chat"] == chat_answer);
  CHECK(got["vercel_chat_stream"] == chat_answer);
  CHECK(got["langchain"] == chat_answer);
  CHECK(got["langchain_usage"] == chat["usage"]["completion_tokens"]);
  CHECK(got["langchain_stream"] == chat_answer);
}
