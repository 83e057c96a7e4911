// What the HTTP door of `troupe node --http` withstands, over real sockets against real node
// processes on stories260K: the API key, the refusal of an open non-loopback address, a busy
// port, Host and Origin checks, many concurrent streams, half-sent requests that never end, and
// more connections than the door takes.
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <future>
#include <latch>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "support/api_checks.hpp"
#include "support/http.hpp"
#include "support/nodes.hpp"
#include "support/process.hpp"

using namespace troupe::test;
using nlohmann::json;

namespace {

// One node holding all of stories260K with an HTTP door on port `http`: --http PORT, or
// --http HOST:PORT when `host` is given; `args` beyond.
struct HttpNode {
  TempDir dir;
  int http = free_port();
  std::unique_ptr<BackgroundProcess> process;

  explicit HttpNode(const std::vector<std::string>& args = {}, const std::string& host = {}) {
    std::vector<std::string> argv = {TROUPE_BINARY, "node",
                                     "--listen",    "127.0.0.1:" + std::to_string(free_port()),
                                     "--model",     stories_model(),
                                     "--layers",    "0:5",
                                     "--threads",   "1",
                                     "--http",      (host.empty() ? "" : host + ":") + std::to_string(http)};
    argv.insert(argv.end(), args.begin(), args.end());
    process = std::make_unique<BackgroundProcess>(argv, dir / "node.log");
    INFO(process->log());
    REQUIRE(wait_healthy(http));
  }
};

// `troupe node` with these arguments (all of stories260K), run to its exit.
ProcessResult run_node(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {TROUPE_BINARY, "node",
                                   "--listen",    "127.0.0.1:" + std::to_string(free_port()),
                                   "--model",     stories_model(),
                                   "--layers",    "0:5",
                                   "--threads",   "1"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, {}, "", 30);
}

std::string last_line(const std::string& text) {
  const std::string t = text.substr(0, text.find_last_not_of('\n') + 1);
  return t.substr(t.rfind('\n') == std::string::npos ? 0 : t.rfind('\n') + 1);
}

std::string header(const HttpResponse& r, const std::string& name) {
  const auto it = r.headers.find(name);
  return it == r.headers.end() ? "" : it->second;
}

// The error object of a refusal, its shape checked.
json error_of(const HttpResponse& r) {
  INFO(r.status << " " << r.body);
  REQUIRE(r.headers.at("content-type").rfind("application/json", 0) == 0);
  const json e = json::parse(r.body).at("error");
  CHECK(e["message"].is_string());
  CHECK(!e["message"].get<std::string>().empty());
  CHECK(e["type"].is_string());
  CHECK(e.contains("param"));
  return e;
}

double metric(const std::string& metrics, const std::string& name) {
  const auto at = metrics.find("\n" + name + " ");
  REQUIRE(at != std::string::npos);
  return std::stod(metrics.substr(at + name.size() + 2));
}

// Connections to 127.0.0.1:port whose handshake is complete, as the clients' side of
// /proc/net/tcp lists them.
std::size_t established_to(int port) {
  std::ifstream table("/proc/net/tcp");
  std::string line;
  std::getline(table, line);  // the heading
  std::size_t n = 0;
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    const auto colon = remote.find(':');
    if (colon != std::string::npos && remote.substr(0, colon) == "0100007F" &&
        std::stoi(remote.substr(colon + 1), nullptr, 16) == port && state == "01")
      n++;
  }
  return n;
}

const json kSmallCompletion = {{"prompt", "Once upon a time"}, {"temperature", 0}, {"max_tokens", 5}};

}  // namespace

TEST_CASE("with --api-key, /v1, /mesh and /metrics need the key, /health and the page do not",
          "[http][security]") {
  const std::string key = "s3cret-Key_0123456789";
  HttpNode node({"--api-key", key});
  INFO(node.process->log());
  std::string near = key;
  near.back() = 'X';  // as long as the key, wrong at its end
  const std::vector<HttpHeaders> refused = {{},
                                            {{"Authorization", "Bearer " + near}},
                                            {{"Authorization", "Bearer " + key + "0"}},
                                            {{"Authorization", "Basic " + key}},
                                            {{"Authorization", key}}};
  const HttpHeaders admitted = {{"Authorization", "Bearer " + key}};
  struct Call {
    std::string method, path;
    int status;  // with the key
  };
  for (const Call& c :
       {Call{"GET", "/v1/models", 200}, Call{"GET", "/mesh", 200}, Call{"GET", "/metrics", 200},
        Call{"POST", "/v1/completions", 200}, Call{"GET", "/v1/nothing", 404}}) {
    const std::string body = c.method == "POST" ? kSmallCompletion.dump() : "";
    for (const HttpHeaders& headers : refused) {
      const HttpResponse r = http_request(node.http, c.method, c.path, body, "application/json", headers);
      INFO(c.method << " " << c.path << " " << (headers.empty() ? "(no key)" : headers[0].second));
      CHECK(r.status == 401);
      CHECK(header(r, "www-authenticate") == "Bearer");
      CHECK(error_of(r)["code"] == "invalid_api_key");
    }
    INFO(c.method << " " << c.path << " with the key");
    CHECK(http_request(node.http, c.method, c.path, body, "application/json", admitted).status == c.status);
  }
  const json chat = {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 3}};
  post(node.http, "/v1/chat/completions", chat, 401);
  post(node.http, "/v1/chat/completions", chat, 200, {{"Authorization", "bearer " + key}});
  const json response = {{"input", "Hi"}, {"max_output_tokens", 3}};
  CHECK(post(node.http, "/v1/responses", response, 401)["error"]["code"] == "invalid_api_key");
  post(node.http, "/v1/responses", response, 200, {{"Authorization", "Bearer " + key}});
  CHECK(http_request(node.http, "GET", "/health").status == 200);
  const HttpResponse page = http_request(node.http, "GET", "/");
  CHECK(page.status == 200);
  CHECK(page.body.find("Authorization") != std::string::npos);  // the page sends the key it is given

  // The key from the environment, as from the flag.
  setenv("TROUPE_API_KEY", "from-the-environment", 1);
  HttpNode from_env;
  unsetenv("TROUPE_API_KEY");
  CHECK(http_request(from_env.http, "GET", "/v1/models").status == 401);
  CHECK(http_request(from_env.http, "GET", "/v1/models", "", "application/json",
                     {{"Authorization", "Bearer from-the-environment"}})
            .status == 200);
}

TEST_CASE("an --http address other than loopback needs --api-key or --http-insecure", "[http][security]") {
  const std::string address = "0.0.0.0:" + std::to_string(free_port());
  const ProcessResult open = run_node({"--http", address});
  INFO(open.err);
  CHECK(open.exit_code == 2);
  CHECK(open.err.find('\n') == open.err.size() - 1);  // one line
  CHECK(open.err.find("--http " + address) != std::string::npos);
  CHECK(open.err.find("--api-key") != std::string::npos);
  CHECK(open.err.find("--http-insecure") != std::string::npos);

  // The new flags' bad values, each named.
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"--http-insecure"}, "--http-insecure"},
      {{"--allowed-hosts", "a.example"}, "--allowed-hosts"},
      {{"--http", "8080", "--allowed-hosts", "a.example:80"}, "--allowed-hosts"},
      {{"--http", "8080", "--api-key", "two words"}, "--api-key"},
      {{"--cors", "https://a.example"}, "--cors"},
      {{"--http", "8080", "--cors", "a.example"}, "--cors"}};
  for (const auto& [args, flag] : bad) {
    const ProcessResult r = run_node(args);
    INFO(args.back() << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.rfind("troupe: " + flag, 0) == 0);
  }

  // --http-insecure serves it open, and says so in the log.
  HttpNode insecure({"--http-insecure"}, "0.0.0.0");
  CHECK(http_request(insecure.http, "GET", "/v1/models").status == 200);
  CHECK(insecure.process->log().find("without a key (--http-insecure)") != std::string::npos);
  // A key serves it too, to those who have the key.
  HttpNode keyed({"--api-key", "k-0123456789"}, "0.0.0.0");
  CHECK(http_request(keyed.http, "GET", "/v1/models").status == 401);
  CHECK(http_request(keyed.http, "GET", "/v1/models", "", "application/json",
                     {{"Authorization", "Bearer k-0123456789"}})
            .status == 200);
}

TEST_CASE("pages of the origins --cors names may call the API (preflight included) and others stay out",
          "[http][security]") {
  HttpNode node({"--cors", "https://app.example,http://localhost:5173", "--api-key", "k-0123456789"});
  const std::string app = "https://app.example";
  // The browser's preflight: no key, and the answer says what the page may send.
  const HttpResponse preflight =
      http_request(node.http, "OPTIONS", "/v1/chat/completions", "", "",
                   {{"Origin", app}, {"Access-Control-Request-Method", "POST"},
                    {"Access-Control-Request-Headers", "authorization,content-type"}});
  CHECK(preflight.status == 204);
  CHECK(preflight.headers.at("access-control-allow-origin") == app);
  CHECK(preflight.headers.at("access-control-allow-headers") == "authorization,content-type");
  CHECK(preflight.headers.at("access-control-allow-methods").find("POST") != std::string::npos);
  // The request itself needs the key still; its answer (and its refusal) carry the CORS header.
  const HttpHeaders from_app = {{"Origin", app}, {"Authorization", "Bearer k-0123456789"}};
  const HttpResponse answered =
      http_request(node.http, "POST", "/v1/completions", kSmallCompletion.dump(), "application/json", from_app);
  CHECK(answered.status == 200);
  CHECK(answered.headers.at("access-control-allow-origin") == app);
  const HttpResponse keyless =
      http_request(node.http, "POST", "/v1/completions", kSmallCompletion.dump(), "application/json", {{"Origin", app}});
  CHECK(keyless.status == 401);
  CHECK(keyless.headers.at("access-control-allow-origin") == app);
  // Another origin: refused, preflight and all, and told of --cors.
  const HttpResponse evil = http_request(node.http, "OPTIONS", "/v1/chat/completions", "", "",
                                         {{"Origin", "https://evil.example"}, {"Access-Control-Request-Method", "POST"}});
  CHECK(evil.status == 403);
  CHECK(evil.headers.count("access-control-allow-origin") == 0);
  CHECK(error_of(evil)["message"].get<std::string>().find("--cors") != std::string::npos);
  // The Host check still holds (DNS rebinding): an allowed origin through a foreign name is refused.
  CHECK(http_request(node.http, "GET", "/v1/models", "", "application/json",
                     {{"Origin", app}, {"Host", "evil.example"}, {"Authorization", "Bearer k-0123456789"}})
            .status == 403);
}

TEST_CASE("a busy --http port stops the second node with one line naming it", "[http][security]") {
  HttpNode first;
  // With SO_REUSEPORT the second node would bind too and run until killed; it must exit at once.
  const ProcessResult second = run_node({"--http", std::to_string(first.http)});
  INFO(second.err);
  CHECK(second.exit_code == 1);
  CHECK(last_line(second.err) == "troupe: --http 127.0.0.1:" + std::to_string(first.http) +
                                     ": cannot listen there: Address already in use");
  // The port stays the first node's alone: every request reaches it.
  for (int i = 0; i < 10; i++) CHECK(http_request(first.http, "GET", "/health").status == 200);
}

TEST_CASE("Host and Origin must name the node, and --allowed-hosts admits more names", "[http][security]") {
  HttpNode node;
  const std::string port = std::to_string(node.http);
  auto models = [](int http, const HttpHeaders& headers) {
    return http_request(http, "GET", "/v1/models", "", "application/json", headers);
  };
  CHECK(models(node.http, {{"Host", "localhost:" + port}}).status == 200);
  CHECK(models(node.http, {{"Host", "127.0.0.1"}}).status == 200);
  // A name rebound to 127.0.0.1 by a page on another origin (DNS rebinding).
  const HttpResponse rebound = models(node.http, {{"Host", "evil.example:" + port}});
  CHECK(rebound.status == 403);
  const json e = error_of(rebound);
  CHECK(e["code"] == "host_not_allowed");
  CHECK(e["message"].get<std::string>().find("--allowed-hosts evil.example") != std::string::npos);
  CHECK(http_request(node.http, "GET", "/health", "", "", {{"Host", "evil.example"}}).status == 403);
  // A page on another origin posting through its visitor's browser.
  CHECK(post(node.http, "/v1/completions", kSmallCompletion, 403,
             {{"Origin", "http://evil.example"}})["error"]["code"] == "origin_not_allowed");
  post(node.http, "/v1/completions", kSmallCompletion, 200, {{"Origin", "http://127.0.0.1:" + port}});

  HttpNode named({"--allowed-hosts", "mesh.example,other.example"});
  const std::string named_port = std::to_string(named.http);
  CHECK(models(named.http, {{"Host", "mesh.example:" + named_port}}).status == 200);
  CHECK(models(named.http, {{"Host", "other.example"}}).status == 200);
  CHECK(models(named.http, {{"Host", "127.0.0.1:" + named_port}}).status == 200);
  CHECK(models(named.http, {{"Host", "evil.example"}}).status == 403);
  post(named.http, "/v1/completions", kSmallCompletion, 200,
       {{"Host", "mesh.example"}, {"Origin", "http://mesh.example"}});
}

TEST_CASE("seventy streams that connect while the node is busy are all queued, and all complete",
          "[http][security]") {
  HttpNode node;
  INFO(node.process->log());
  const json body = {{"prompt", "Once upon a time"}, {"temperature", 0}, {"max_tokens", 30}};
  const json whole = post(node.http, "/v1/completions", body);
  // The node stopped, the kernel alone takes the connections: as many as the listen backlog
  // holds complete their handshake, the others wait for a retransmitted SYN (or are reset).
  node.process->signal(SIGSTOP);
  constexpr int kClients = 70;
  std::latch start(kClients);
  std::vector<std::future<HttpResponse>> clients;
  for (int i = 0; i < kClients; i++) {
    clients.push_back(std::async(std::launch::async, [&] {
      start.arrive_and_wait();
      return request_stream(node.http, "/v1/completions", body);
    }));
  }
  for (int i = 0; i < 200 && established_to(node.http) < kClients; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::size_t queued = established_to(node.http);
  node.process->signal(SIGCONT);
  // At least: a client of a test beside this one may have reached the port before it was ours.
  CHECK(queued >= kClients);
  for (int i = 0; i < kClients; i++) {
    INFO("client " << i);
    HttpResponse r;
    REQUIRE_NOTHROW(r = clients[i].get());  // a reset connection throws
    const Streamed s = check_stream("/v1/completions", r);
    CHECK(s.text == text_of(whole));
    CHECK(s.finish_reason == whole["choices"][0]["finish_reason"]);
  }
}

TEST_CASE("sixty half-sent requests neither block /health nor outlive the header deadline",
          "[http][security][hostile]") {
  HttpNode node;
  HalfSentRequests slow(node.http, 60);
  // While they are all open, other requests are answered.
  for (int round = 0; round < 3; round++) {
    CHECK(http_request(node.http, "GET", "/health").status == 200);
    CHECK(slow.closed_by_server() == 0);
  }
  const HttpResponse metrics = http_request(node.http, "GET", "/metrics");
  REQUIRE(metrics.status == 200);
  CHECK(metric(metrics.body, "troupe_http_connections_open") >= 61);  // these and the /metrics request
  CHECK(slow.closed_by_server() == 0);

  // The header deadline (10 s from a request's first byte) ends each of them with a 408.
  for (int i = 0; i < 600 && slow.closed_by_server() < slow.size(); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(slow.closed_by_server() == slow.size());
  for (std::size_t i = 0; i < slow.size(); i++) {
    INFO("connection " << i << ": " << slow.received(i));
    CHECK(slow.received(i).rfind("HTTP/1.1 408 ", 0) == 0);
    CHECK(slow.received(i).find("the headers did not arrive within 10 s") != std::string::npos);
  }
  CHECK(http_request(node.http, "GET", "/health").status == 200);
}

TEST_CASE("connections beyond the door's limit get a 503 at once, and the door recovers",
          "[http][security]") {
  HttpNode node;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the readiness checks' connections end
  {
    HalfSentRequests held(node.http, 256);  // ConnectionLimits::max_connections
    const HttpResponse refused = http_request(node.http, "GET", "/health");
    CHECK(refused.status == 503);
    CHECK(header(refused, "connection") == "close");
    CHECK(error_of(refused)["code"] == "too_many_connections");
    CHECK(held.closed_by_server() == 0);
  }
  REQUIRE(wait_healthy(node.http));
  const HttpResponse metrics = http_request(node.http, "GET", "/metrics");
  CHECK(metric(metrics.body, "troupe_http_connections_refused_total") >= 1);
}
