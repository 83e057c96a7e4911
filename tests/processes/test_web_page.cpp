// The chat page at / in a real browser: Debian's chromium, headless, loads the page from a node,
// sends a message (the page's ?ask= parameter) and streams the answer; the DOM it ends with must
// hold the same answer as the chat API gives, received in many pieces, and the mesh view. On a
// node with --api-key the page asks for the key, and with it (given in the link's fragment)
// streams as before.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>

#include "support/http.hpp"
#include "support/nodes.hpp"
#include "support/process.hpp"

using namespace troupe::test;
using nlohmann::json;

namespace {

std::string unescape_html(std::string s) {
  const std::pair<std::string, std::string> entities[] = {
      {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&nbsp;", "\xC2\xA0"}, {"&amp;", "&"}};
  for (const auto& [from, to] : entities) {
    for (std::size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  }
  return s;
}

// What headless chromium's DOM holds once the page at `url` has run (its fetches included).
ProcessResult browse(const std::string& url, int virtual_ms = 5000) {
  TempDir profile;
  // Virtual time does not advance while a fetch is pending, so the budget is reached only after
  // the streamed answer (and a few mesh polls) are complete.
  return run_process({"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                      "--user-data-dir=" + profile.path, "--virtual-time-budget=" + std::to_string(virtual_ms), "--dump-dom", url},
                     {}, "", 120);
}

const std::regex kAnswer(R"re(<div class="msg assistant" data-state="(\w+)" data-chunks="(\d+)">([^<]*)<span class="meta">finish: (\w+)</span>)re");

}  // namespace

TEST_CASE("the chat page streams an answer in a headless browser", "[http][browser]") {
  const int http0 = free_port(), http1 = free_port();
  Mesh mesh({{"s0", std::pair{0, 2}}, {"s1", std::pair{2, 5}}}, {},
            {{"--http", std::to_string(http0)}, {"--http", std::to_string(http1)}});
  REQUIRE(mesh.wait_serving());

  // What the page asks: the conversation so far, greedy, seed 1, 60 tokens at most.
  const json body = {{"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}},
                     {"temperature", 0}, {"seed", 1}, {"max_tokens", 60}};
  const HttpResponse api = http_request(http0, "POST", "/v1/chat/completions", body.dump());
  REQUIRE(api.status == 200);
  const std::string expected = json::parse(api.body)["choices"][0]["message"]["content"];
  REQUIRE(!expected.empty());

  const std::string url = "http://127.0.0.1:" + std::to_string(http1) +
                          "/?ask=Once%20upon%20a%20time&temperature=0&max_tokens=60";
  const ProcessResult r = browse(url);
  INFO("chromium stderr: " << r.err.substr(0, 2000) << "\nlogs:\n" << mesh.logs());
  REQUIRE(r.exit_code == 0);
  const std::string& dom = r.out;
  std::smatch m;
  INFO(dom.substr(0, 4000));
  REQUIRE(std::regex_search(dom, m, kAnswer));
  CHECK(m[1] == "done");
  CHECK(std::stoi(m[2]) > 10);  // streamed: many pieces, each shown as it came
  CHECK(unescape_html(m[3]) == expected);
  CHECK(m[4] == json::parse(api.body)["choices"][0]["finish_reason"]);
  // The mesh view, filled from /mesh: both members and both stages.
  CHECK(dom.find("<td>s0</td>") != std::string::npos);
  CHECK(dom.find("<td>s1</td>") != std::string::npos);
  CHECK(dom.find("<td class=\"alive\">alive</td>") != std::string::npos);
  // The pipeline: each stage with its node's compute time a position and resident memory, as bars.
  const std::regex stage_row(R"re(<tr class="stage" data-node="(s\d)" data-ms="([0-9.e-]+)" data-rss="(\d+)">)re");
  int stages = 0;
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), stage_row); it != std::sregex_iterator(); ++it, ++stages) {
    INFO((*it)[0]);
    CHECK((*it)[1].str().substr(1) == std::to_string(stages));  // "s0", "s1" in order (the regex has the "s")
    CHECK(std::stod((*it)[2]) > 0);
    CHECK(std::stoull((*it)[3]) > (1u << 20));
  }
  CHECK(stages == 2);
  CHECK(dom.find("class=\"bar\"><i style=\"width: ") != std::string::npos);
}

TEST_CASE("the chat page asks for the API key, and streams with it", "[http][browser]") {
  const std::string key = "page-key-0123";
  const int http = free_port();
  Mesh mesh({{"s0", std::pair{0, 5}}}, {}, {{"--http", std::to_string(http), "--api-key", key}});
  REQUIRE(mesh.wait_serving());
  const json body = {{"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}},
                     {"temperature", 0}, {"seed", 1}, {"max_tokens", 60}};
  const HttpResponse api = http_request(http, "POST", "/v1/chat/completions", body.dump(), "application/json",
                                        {{"Authorization", "Bearer " + key}});
  REQUIRE(api.status == 200);
  const std::string expected = json::parse(api.body)["choices"][0]["message"]["content"];
  const std::string url = "http://127.0.0.1:" + std::to_string(http) +
                          "/?ask=Once%20upon%20a%20time&temperature=0&max_tokens=60";

  // Without the key: the message is refused, and the page shows its key form.
  const ProcessResult asked = browse(url);
  INFO("chromium stderr: " << asked.err.substr(0, 2000) << "\nlogs:\n" << mesh.logs());
  REQUIRE(asked.exit_code == 0);
  INFO(asked.out.substr(0, 4000));
  CHECK(asked.out.find("<body data-key=\"asked\">") != std::string::npos);
  CHECK(asked.out.find("<form id=\"keyform\">") != std::string::npos);  // no longer hidden
  CHECK(asked.out.find("data-state=\"error\"") != std::string::npos);
  CHECK(asked.out.find(">error: this node needs its API key: enter it above<") != std::string::npos);
  CHECK(asked.out.find("<td>s0</td>") == std::string::npos);  // /mesh refused too

  // With the key (from the link's fragment): the answer streams, and the mesh view fills.
  const ProcessResult given = browse(url + "#key=" + key);
  REQUIRE(given.exit_code == 0);
  const std::string& dom = given.out;
  INFO(dom.substr(0, 4000));
  std::smatch m;
  REQUIRE(std::regex_search(dom, m, kAnswer));
  CHECK(m[1] == "done");
  CHECK(std::stoi(m[2]) > 10);
  CHECK(unescape_html(m[3]) == expected);
  CHECK(dom.find("<form id=\"keyform\" hidden=\"\">") != std::string::npos);
  CHECK(dom.find("<td>s0</td>") != std::string::npos);
  CHECK(dom.find("<td class=\"alive\">alive</td>") != std::string::npos);
}

TEST_CASE("the chat page keeps a conversation going past a small context, and stops an answer",
          "[http][browser]") {
  const int http = free_port();
  Mesh mesh({{"s0", std::pair{0, 5}}}, {}, {{"--http", std::to_string(http)}});
  REQUIRE(mesh.wait_serving());
  // stories260K's context is 512 tokens: after a first answer of up to 480, the second turn's
  // conversation and max tokens cannot both fit; the third answer is stopped after 3 pieces.
  const std::string url = "http://127.0.0.1:" + std::to_string(http) +
                          "/?ask=Once%20upon%20a%20time&ask=Tell%20me%20more&ask=And%20then%3F"
                          "&temperature=0&max_tokens=480&stop_after=3";
  // A streamed body does not hold virtual time as a pending fetch does: on a loaded machine two
  // answers of hundreds of tokens need more of it than one of 60.
  const ProcessResult r = browse(url, 60000);
  INFO("chromium stderr: " << r.err.substr(0, 2000) << "\nlogs:\n" << mesh.logs());
  REQUIRE(r.exit_code == 0);
  const std::string& dom = r.out;
  INFO(dom.substr(0, 6000));
  static const std::regex answer(
      R"re(<div class="msg assistant" data-state="(\w+)" data-chunks="(\d+)">[^<]*<span class="meta">finish: ([^<]*)</span>)re");
  std::vector<std::smatch> answers;
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), answer); it != std::sregex_iterator(); ++it) {
    answers.push_back(*it);
  }
  REQUIRE(answers.size() == 3);
  CHECK(answers[0][1] == "done");
  CHECK(answers[1][1] == "done");
  const std::string second = answers[1][3];
  CHECK((second.find("the room left in the context") != std::string::npos ||
         second.find("left out to fit the context") != std::string::npos));
  CHECK(answers[2][1] == "stopped");
  CHECK(answers[2][2] == "3");
  CHECK(std::string(answers[2][3]).rfind("stopped", 0) == 0);
  CHECK(dom.find(">error:") == std::string::npos);
  CHECK(dom.find("<button id=\"send\" type=\"submit\">Send</button>") != std::string::npos);
  CHECK(dom.find("rel=\"icon\"") != std::string::npos);
}

TEST_CASE("the chat page's picture for the docs: a streamed answer and the pipeline of three nodes", "[http][browser]") {
  // docs/web-page.png is this test's picture (written to web-page.png in the test's working
  // folder, build/tests; copied to docs/ by hand when the page changes).
  const int http = free_port();
  Mesh mesh({{"laptop", std::pair{0, 2}}, {"raspberry-pi", std::pair{2, 5}}, {"phone", std::nullopt}}, {},
            {{}, {}, {"--http", std::to_string(http)}});
  REQUIRE(mesh.wait_serving());
  const std::string url = "http://127.0.0.1:" + std::to_string(http) + "/?ask=Once%20upon%20a%20time&max_tokens=200";
  const std::string picture = (std::filesystem::current_path() / "web-page.png").string();
  std::filesystem::remove(picture);
  TempDir profile;
  const ProcessResult r =
      run_process({"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--hide-scrollbars", "--user-data-dir=" + profile.path, "--virtual-time-budget=5000",
                   "--window-size=1280,760", "--screenshot=" + picture, url},
                  {}, "", 120);
  INFO("chromium stderr: " << r.err.substr(0, 2000));
  REQUIRE(r.exit_code == 0);
  std::ifstream in(picture, std::ios::binary);
  const std::string png((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(png.size() > 20000);  // a page with text in it, not an empty one
  CHECK(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
  CHECK(png.compare(12, 4, "IHDR") == 0);
  auto be32 = [&](std::size_t at) {
    return uint32_t(uint8_t(png[at])) << 24 | uint32_t(uint8_t(png[at + 1])) << 16 | uint32_t(uint8_t(png[at + 2])) << 8 |
           uint8_t(png[at + 3]);
  };
  CHECK(be32(16) == 1280);
  CHECK(be32(20) == 760);
}
