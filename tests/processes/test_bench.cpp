// `troupe bench`: one row per model and thread count, with figures that hang together, and the
// usual one-line errors for bad input. Speeds are not asserted (benchmarks measure; tests check).
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "support/nodes.hpp"
#include "support/process.hpp"
#include "troupe/model/model.hpp"

using namespace troupe;

TEST_CASE("troupe bench reports speed, memory and the bandwidth bound for each model and thread count", "[bench]") {
  const std::string model = test::stories_model();
  const auto r = test::run_troupe({"bench", model, "--threads", "1,2", "--prompt-tokens", "16", "--gen-tokens", "8",
                                   "--reps", "2", "--bandwidth-mib", "64", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto rows = nlohmann::json::parse(r.out);
  REQUIRE(rows.size() == 2);
  const double weights_mb = double(load_model(model).bytes_per_token()) / 1e6;
  for (std::size_t i = 0; i < rows.size(); i++) {
    const auto& row = rows[i];
    CHECK(row["model"] == "stories260K.bin");
    CHECK(row["type"] == "f32");
    CHECK(row["threads"] == int(i + 1));
    CHECK(row["prompt_tokens_per_s"].get<double>() > 0);
    CHECK(row["generation_tokens_per_s"].get<double>() > 0);
    CHECK(row["ms_per_token"].get<double>() ==
          Approx(1000 / row["generation_tokens_per_s"].get<double>()).epsilon(1e-6));
    CHECK(row["weights_mb_per_token"].get<double>() == Approx(weights_mb));
    CHECK(row["read_gbps"].get<double>() > 0);
    CHECK(row["bound_tokens_per_s"].get<double>() ==
          Approx(row["read_gbps"].get<double>() * 1e3 / weights_mb).epsilon(1e-6));
    CHECK(row["of_bound"].is_null());  // 1 MB of weights stays in the caches: no memory bound
    CHECK(row["of_bound_at_high_bandwidth"].is_null());
    CHECK(row["prompt_over_generation"].get<double>() ==
          Approx(row["prompt_tokens_per_s"].get<double>() / row["generation_tokens_per_s"].get<double>()));
    // The bound's bandwidth is the median of the probes between the paired tokens: within their
    // range. Every generated token was paired with the probes either side of it.
    const auto range = row["read_gbps_range"];
    REQUIRE(range.size() == 2);
    CHECK(range[0].get<double>() > 0);
    CHECK(range[0].get<double>() <= row["read_gbps"].get<double>());
    CHECK(row["read_gbps"].get<double>() <= range[1].get<double>());
    const auto paired = row["token_over_probe"].get<std::vector<double>>();
    CHECK(paired.size() == 8);
    CHECK(std::is_sorted(paired.begin(), paired.end()));
    CHECK(paired.front() > 0);
    // The model's own memory (1 MB of weights, scratch), not the 64 MiB probe buffer.
    CHECK(row["peak_rss_mib"].get<double>() > 1);
    CHECK(row["peak_rss_mib"].get<double>() < 60);
  }
  const auto table = test::run_troupe({"bench", model, "--threads", "1", "--prompt-tokens", "4", "--gen-tokens", "4",
                                       "--reps", "1", "--bandwidth-mib", "16"});
  REQUIRE(table.exit_code == 0);
  CHECK(table.out.rfind("| model | type | threads | prompt tok/s | generation tok/s |", 0) == 0);
  CHECK(table.out.find("| stories260K.bin | f32 | 1 |") != std::string::npos);
}

TEST_CASE("troupe bench names what is wrong with its input", "[bench]") {
  const std::string model = test::stories_model();
  auto r = test::run_troupe({"bench", "/nonexistent/model.gguf"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("/nonexistent/model.gguf") != std::string::npos);
  r = test::run_troupe({"bench", model, "--prompt-tokens", "600", "--bandwidth-mib", "16", "--reps", "1"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("exceed stories260K.bin's context of 512") != std::string::npos);
  r = test::run_troupe({"bench", model, "--threads", "-1"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--threads") != std::string::npos);
}

namespace {

// A picture of `url` by headless chromium, for docs/: written to `name` in the test's working
// folder (build/tests); true when a picture with something in it was written.
bool picture(const std::string& url, const std::string& name, const std::string& profile) {
  const std::string file = (std::filesystem::current_path() / name).string();
  std::filesystem::remove(file);
  const auto r = test::run_process({"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                                    "--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + profile,
                                    "--window-size=1000,620", "--screenshot=" + file, url},
                                   {}, "", 120);
  const std::string png = test::read_all(file);
  return r.exit_code == 0 && png.size() > 10000 && png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}
}  // namespace

TEST_CASE("troupe bench --report writes one self-contained page of charts, other engines beside troupe",
          "[bench][browser]") {
  const test::TempDir dir;
  const std::string model = test::stories_model();
  // Another engine's figures, as bench/llamacpp.mjs prints them (one for a thread count that was
  // not run, which must not appear).
  test::write_all(dir / "other.jsonl",
                  "{\"engine\":\"llama.cpp\",\"model\":\"stories260K.bin\",\"threads\":1,\"prompt_tok_s\":123.5,\"gen_tok_s\":45.25}\n"
                  "{\"engine\":\"llama.cpp\",\"model\":\"stories260K.bin\",\"threads\":7,\"prompt_tok_s\":1,\"gen_tok_s\":1}\n");
  const auto r = test::run_troupe({"bench", model, "--threads", "1,2", "--prompt-tokens", "8", "--gen-tokens", "4",
                                   "--reps", "1", "--bandwidth-mib", "16", "--report", dir / "report.html",
                                   "--compare", dir / "other.jsonl"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const std::string page = test::read_all(dir / "report.html");
  CHECK(page.rfind("<!doctype html>", 0) == 0);
  CHECK(page.find("<script") == std::string::npos);
  // Nothing fetched: the only URL is SVG's namespace.
  CHECK(count(page, "http") == count(page, "xmlns='http://www.w3.org/2000/svg'"));
  CHECK(page.find("stories260K.bin") != std::string::npos);
  // A generation and a prompt chart for the model: troupe at 1 and 2 threads in each (no bound:
  // the model stays in the caches), llama.cpp's row for 1 thread in each.
  CHECK(count(page, "<svg") == 2);
  CHECK(count(page, "<rect") == 6);
  CHECK(page.find("45.2") != std::string::npos);
  CHECK(page.find("124") != std::string::npos);

  // A headless browser renders it: every bar is in its DOM.
  const auto dom = test::run_process({"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                                      "--disable-dev-shm-usage", "--user-data-dir=" + (dir / "profile"), "--dump-dom",
                                      "file://" + (dir / "report.html")},
                                     {}, "", 120);
  INFO(dom.err.substr(0, 2000));
  REQUIRE(dom.exit_code == 0);
  CHECK(count(dom.out, "<rect") == 6);
}

TEST_CASE("troupe bench --report and --compare name what is wrong", "[bench]") {
  const test::TempDir dir;
  const std::string model = test::stories_model();
  auto r = test::run_troupe({"bench", model, "--report", "/nonexistent/dir/r.html"});
  CHECK(r.exit_code == 2);
  CHECK(r.err == "troupe: --report /nonexistent/dir/r.html: cannot write this file\n");
  test::write_all(dir / "bad.jsonl", "{\"engine\":\"x\"}\nnot json\n");
  r = test::run_troupe({"bench", model, "--report", dir / "r.html", "--compare", dir / "bad.jsonl"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("line 2 is not JSON") != std::string::npos);
  test::write_all(dir / "short.jsonl", "{\"engine\":\"x\"}\n");
  r = test::run_troupe({"bench", model, "--report", dir / "r.html", "--compare", dir / "short.jsonl"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("needs engine, model, threads") != std::string::npos);
  r = test::run_troupe({"bench", model, "--compare", dir / "short.jsonl"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--report") != std::string::npos);
}

TEST_CASE("troupe bench --mesh measures each stage of a mesh's pipeline, as a table, JSON and a page", "[bench][browser]") {
  const test::TempDir dir;
  test::Mesh mesh({{"s0", std::pair{0, 2}}, {"s1", std::pair{2, 5}}, {"door", std::nullopt}});
  REQUIRE(mesh.wait_serving());
  std::vector<std::string> args = {"bench", "--mesh", mesh.address(2), "--gen-tokens", "16", "--reps", "2"};
  for (const auto& a : mesh.client_args()) args.push_back(a);
  // The table: a line a stage, in layer order, through the stage-less door.
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> all = args;
    all.insert(all.end(), more.begin(), more.end());
    return test::run_troupe(all);
  };
  const auto table = with({"--report", dir / "pipeline.html"});
  INFO(table.out << table.err);
  REQUIRE(table.exit_code == 0);
  CHECK(table.out.find("2 stages, 16 tokens x 2") != std::string::npos);
  CHECK(table.out.find("\n0     s0                   0:2 ") != std::string::npos);
  CHECK(table.out.find("\n1     s1                   2:5 ") != std::string::npos);
  // JSON: figures that hang together.
  const auto j = nlohmann::json::parse(with({"--json"}).out);
  REQUIRE(j["stages"].size() == 2);
  CHECK(j["decode_tok_s"].get<double>() > 0);
  CHECK(j["hops_per_token"].get<double>() == Approx(3.0).margin(0.5));  // door -> s0 -> s1 -> door
  for (const auto& st : j["stages"]) {
    CHECK(st["ms_per_position"].get<double>() > 0);
    CHECK(st["rss_bytes"].get<uint64_t>() > (1u << 20));
  }
  // The first stage sends activations (dim 64, f32), the last a sampled token.
  CHECK(j["stages"][0]["sent_bytes_per_position"].get<double>() > 64 * 4);
  CHECK(j["stages"][1]["sent_bytes_per_position"].get<double>() < 64 * 4);
  // The page: three charts of a bar a stage, nothing fetched.
  const std::string page = test::read_all(dir / "pipeline.html");
  CHECK(page.rfind("<!doctype html>", 0) == 0);
  CHECK(page.find("<script") == std::string::npos);
  CHECK(count(page, "<svg") == 3);
  CHECK(count(page, "<rect") == 6);
  CHECK(picture("file://" + (dir / "pipeline.html"), "pipeline-report.png", dir / "profile"));
}

TEST_CASE("troupe bench --mesh names what is wrong", "[bench]") {
  auto r = test::run_troupe({"bench"});
  CHECK(r.exit_code == 2);
  CHECK(r.err == "troupe: troupe bench: give model files, or --mesh PEER\n");
  r = test::run_troupe({"bench", test::stories_model(), "--mesh", "127.0.0.1:1"});
  CHECK(r.exit_code == 2);
  CHECK(r.err == "troupe: --mesh: measures the mesh's own model; give no model files with it\n");
  r = test::run_troupe({"bench", "--mesh", "127.0.0.1:1", "--gen-tokens", "1", "--insecure"});
  CHECK(r.exit_code == 2);
  CHECK(r.err == "troupe: --gen-tokens: must be 2 or more with --mesh\n");
}
