// Who may use a node's HTTP door (cli/http_access): the API key, the Host and Origin rules, and
// the parsing of --allowed-hosts.
#include <catch2/catch.hpp>

#include "http_access.hpp"

using namespace troupe::cli;
using namespace troupe::cli::http_access;

namespace {

Request request(std::string_view path, std::optional<std::string_view> host,
                std::optional<std::string_view> authorization = std::nullopt,
                std::string_view local = "127.0.0.1", std::optional<std::string_view> origin = std::nullopt) {
  return Request{path, host, origin, authorization, local};
}

}  // namespace

TEST_CASE("the key is asked on every path but the page and /health", "[http-access]") {
  const Policy keyed{"k3y-0123", {}, {}};
  for (const char* path :
       {"/v1/models", "/v1/completions", "/v1/chat/completions", "/v1/responses", "/mesh", "/metrics", "/v1/other", "/x"}) {
    INFO(path);
    const auto missing = check(keyed, request(path, "127.0.0.1:8080"));
    REQUIRE(missing);
    CHECK(missing->http_status == 401);
    CHECK(missing->code == "invalid_api_key");
    CHECK(missing->to_json()["error"]["message"].get<std::string>().find("Authorization: Bearer") !=
          std::string::npos);
    const auto wrong = check(keyed, request(path, "127.0.0.1:8080", "Bearer k3y-0124"));
    REQUIRE(wrong);
    CHECK(wrong->http_status == 401);
    CHECK(!check(keyed, request(path, "127.0.0.1:8080", "Bearer k3y-0123")));
  }
  CHECK(!check(keyed, request("/", "localhost:8080")));
  CHECK(!check(keyed, request("/health", "localhost:8080")));
  // Without a key nothing is asked.
  CHECK(!check(Policy{}, request("/v1/models", "127.0.0.1:8080")));
}

TEST_CASE("a key matches only as 'Bearer KEY', whole", "[http-access]") {
  CHECK(key_matches("Bearer abc", "abc"));
  CHECK(key_matches("bearer abc", "abc"));  // the scheme's name is case-insensitive
  CHECK(key_matches("Bearer   abc  ", "abc"));
  CHECK(!key_matches("Bearer abd", "abc"));
  CHECK(!key_matches("Bearer ab", "abc"));
  CHECK(!key_matches("Bearer abcd", "abc"));
  CHECK(!key_matches("Bearer ABC", "abc"));
  CHECK(!key_matches("Basic abc", "abc"));
  CHECK(!key_matches("abc", "abc"));
  CHECK(!key_matches("Bearer ", ""));  // an empty key never matches
  CHECK(!key_matches("", "abc"));
}

TEST_CASE("the Host must name the address the client reached, or an allowed name", "[http-access]") {
  const Policy open{};
  // Loopback: any loopback address or localhost, with or without a port.
  for (const char* host : {"127.0.0.1", "127.0.0.1:8080", "localhost", "LOCALHOST:8080", "localhost.",
                           "[::1]:8080", "127.0.0.2"}) {
    INFO(host);
    CHECK(!check(open, request("/v1/models", host)));
  }
  const auto rebound = check(open, request("/v1/models", "evil.example:8080"));
  REQUIRE(rebound);
  CHECK(rebound->http_status == 403);
  CHECK(rebound->code == "host_not_allowed");
  CHECK(rebound->message.find("--allowed-hosts evil.example") != std::string::npos);
  // Checked on the open paths too: a rebound name must not read even those.
  CHECK(check(open, request("/health", "evil.example")));
  CHECK(check(Policy{"key", {}, {}}, request("/v1/models", "evil.example", "Bearer key"))->http_status == 403);
  for (const char* bad : {"", "a b", "host:port", "[::1", "x/y"}) {
    INFO(bad);
    CHECK(check(open, request("/health", std::string_view(bad))));
  }
  CHECK(check(open, request("/health", std::nullopt)));

  // Reached at a LAN address: that address, not localhost.
  CHECK(!check(open, request("/health", "192.168.1.5:8080", std::nullopt, "192.168.1.5")));
  CHECK(!check(open, request("/health", "192.168.1.5", std::nullopt, "::ffff:192.168.1.5")));
  CHECK(check(open, request("/health", "localhost", std::nullopt, "192.168.1.5")));
  CHECK(check(open, request("/health", "node.lan", std::nullopt, "192.168.1.5")));
  const Policy named{"", {"node.lan", "fe80::1"}, {}};  // as parse_host_list gives them
  CHECK(!check(named, request("/health", "node.lan:8080", std::nullopt, "192.168.1.5")));
  CHECK(!check(named, request("/health", "[FE80::1]:8080", std::nullopt, "192.168.1.5")));
  CHECK(check(named, request("/health", "other.lan", std::nullopt, "192.168.1.5")));
  CHECK(!check(Policy{"", {"*"}, {}}, request("/health", "anything.example", std::nullopt, "192.168.1.5")));
}

TEST_CASE("an Origin, when sent, must name the node too", "[http-access]") {
  const Policy open{};
  CHECK(!check(open, request("/v1/completions", "127.0.0.1:8080", std::nullopt, "127.0.0.1",
                             "http://127.0.0.1:8080")));
  CHECK(!check(open, request("/v1/completions", "localhost:8080", std::nullopt, "127.0.0.1",
                             "http://localhost:8080")));
  for (const char* origin : {"http://evil.example", "https://evil.example:8080", "null", "file://"}) {
    INFO(origin);
    const auto e =
        check(open, request("/v1/completions", "127.0.0.1:8080", std::nullopt, "127.0.0.1", origin));
    REQUIRE(e);
    CHECK(e->http_status == 403);
    CHECK(e->code == "origin_not_allowed");
  }
  CHECK(!check(Policy{"", {"app.example"}, {}}, request("/v1/completions", "127.0.0.1:8080", std::nullopt,
                                                    "127.0.0.1", "https://app.example")));
}

TEST_CASE("host names and loopback addresses are read as the rules need them", "[http-access]") {
  CHECK(host_name("Example.COM:80") == "example.com");
  CHECK(host_name("example.com.") == "example.com");
  CHECK(host_name("[::1]:8080") == "::1");
  CHECK(host_name("[::1]") == "::1");
  CHECK(!host_name("[::1]x"));
  CHECK(!host_name("::1"));
  CHECK(!host_name("a:b"));
  CHECK(!host_name(""));
  for (const char* h : {"127.0.0.1", "127.255.0.9", "::1", "localhost", "::ffff:127.0.0.1"})
    CHECK(is_loopback(h));
  for (const char* h :
       {"0.0.0.0", "::", "128.0.0.1", "127.0.0", "127.0.0.256", "localhost.example", "10.0.0.1"}) {
    INFO(h);
    CHECK(!is_loopback(h));
  }
}

TEST_CASE("the list of --allowed-hosts takes names and addresses without ports, or a star for any", "[http-access]") {
  CHECK(parse_host_list("a.example, B.example ,10.0.0.2,[fe80::1],*") ==
        std::vector<std::string>{"a.example", "b.example", "10.0.0.2", "fe80::1", "*"});
  for (const char* bad : {"", "a.example,", "a.example:80", "a b", "http://a.example", "[fe80::1]:80"}) {
    INFO(bad);
    CHECK(!parse_host_list(bad));
  }
}
