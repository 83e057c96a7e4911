// `troupe bench --mesh PEER`: the pipeline's figures, stage by stage. Greedy completions go
// through the peer as `troupe generate` sends them; each stage's node is asked for its counters
// before and after, and the differences give its compute time a position, the bytes it sent a
// position and its memory; the entry's measured round trips less compute give the network's
// share of a token. With --report, the same as a self-contained page of SVG bar charts.
#include "bench_mesh.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_report.hpp"
#include "mesh_access.hpp"
#include "mesh_status.hpp"
#include "version.hpp"
#include "troupe/discovery/planner.hpp"
#include "troupe/model/error.hpp"
#include "troupe/text/generate.hpp"

namespace troupe::cli {

namespace {

constexpr auto kStatusTimeout = std::chrono::seconds(5);
constexpr auto kReplyTimeout = std::chrono::seconds(300);
constexpr const char* kPrompt = "Once upon a time";

struct MeshBenchOptions : BenchSettings {
  std::string peer;  // HOST:PORT or a join token
  MeshFlags mesh;
};

struct Stage {
  std::string node, address;
  LayerRange layers;
  wire::NodeCounters before, after;
  double ms_per_position() const {
    const uint64_t n = after.stage_positions - before.stage_positions;
    return n ? 1e3 * (after.stage_compute_seconds - before.stage_compute_seconds) / double(n) : 0;
  }
  double bytes_per_position() const {
    const uint64_t n = after.stage_positions - before.stage_positions;
    return n ? double(after.bytes_sent - before.bytes_sent) / double(n) : 0;
  }
};

struct MeshRun {
  std::string peer;
  std::vector<Stage> stages;
  GenerationStats best;  // the run with the fastest decode
  double hop_ms = 0, hops_per_token = 0;
};

wire::Status status_at(const net::MeshSecurity& security, const std::string& address) {
  net::MeshClient client(address, security, kStatusTimeout);
  return query_status(client, address, kStatusTimeout);
}

std::vector<Stage> stages_of(const wire::Status& s) {
  std::vector<Stage> out;
  for (const wire::Member* m : pipeline_stages(s)) out.push_back({m->name, m->address, *m->layers, {}, {}});
  return out;
}

GenerationStats complete(net::MeshClient& client, const std::string& peer, int gen_tokens) {
  wire::GenerateRequest r;
  r.prompt = kPrompt;
  r.max_tokens = gen_tokens;
  r.sampling = sampling_settings(0, 0.9f, 1, 1);
  client.send(wire::Message{0, 1, r});
  while (true) {
    const wire::Message m = client.receive(kReplyTimeout);
    if (const auto* done = std::get_if<wire::Done>(&m.body)) return done->stats;
    if (const auto* error = std::get_if<wire::Error>(&m.body)) throw RuntimeFailure(error->message + " (via peer " + peer + ")");
  }
}

MeshRun measure(const MeshBenchOptions& opt) {
  const MeshAccess access = mesh_access(opt.mesh, {opt.peer}, "--mesh");
  const Connection c = connect_to_mesh(access);
  MeshRun run;
  run.peer = c.peer;
  const wire::Status entry_before = query_status(*c.client, c.peer, kStatusTimeout);
  if (!entry_before.serving) throw RuntimeFailure("the mesh at " + c.peer + " does not serve: " + entry_before.problem);
  run.stages = stages_of(entry_before);
  for (Stage& st : run.stages) st.before = status_at(access.security, st.address).counters;
  for (int i = 0; i < opt.reps; i++) {
    const GenerationStats s = complete(*c.client, c.peer, opt.gen_tokens);
    if (i == 0 || s.decode_tokens_per_s() > run.best.decode_tokens_per_s()) run.best = s;
  }
  const wire::Status entry_after = query_status(*c.client, c.peer, kStatusTimeout);
  for (Stage& st : run.stages) st.after = status_at(access.security, st.address).counters;
  const uint64_t hops = entry_after.counters.hops - entry_before.counters.hops;
  const uint64_t tokens = entry_after.counters.tokens_generated - entry_before.counters.tokens_generated;
  if (hops) run.hop_ms = 1e3 * (entry_after.counters.hop_seconds - entry_before.counters.hop_seconds) / double(hops);
  if (tokens) run.hops_per_token = double(hops) / double(tokens);
  return run;
}

void print_table(const MeshRun& run, const MeshBenchOptions& opt) {
  std::printf("mesh via %s: %zu stages, %d tokens x %d, best %.1f tok/s, first token %.1f ms\n", run.peer.c_str(),
              run.stages.size(), opt.gen_tokens, opt.reps, run.best.decode_tokens_per_s(), run.best.first_token_ms);
  std::printf("network: %.3f ms a hop (round trips at the entry less compute), %.1f hops a token\n", run.hop_ms,
              run.hops_per_token);
  std::printf("%-5s %-20s %-8s %12s %12s %9s %9s\n", "stage", "node", "layers", "ms/position", "sent B/pos",
              "RSS MiB", "peak MiB");
  for (std::size_t i = 0; i < run.stages.size(); i++) {
    const Stage& st = run.stages[i];
    std::printf("%-5zu %-20s %-8s %12.3f %12.0f %9.1f %9.1f\n", i, st.node.c_str(),
                discovery::format_range(st.layers).c_str(), st.ms_per_position(), st.bytes_per_position(),
                double(st.after.rss_bytes) / (1 << 20), double(st.after.peak_rss_bytes) / (1 << 20));
  }
}

nlohmann::json run_json(const MeshRun& run) {
  nlohmann::json j = {{"peer", run.peer},
                      {"decode_tok_s", run.best.decode_tokens_per_s()},
                      {"first_token_ms", run.best.first_token_ms},
                      {"hop_network_ms", run.hop_ms},
                      {"hops_per_token", run.hops_per_token},
                      {"stages", nlohmann::json::array()}};
  for (const Stage& st : run.stages) {
    j["stages"].push_back({{"node", st.node},
                           {"address", st.address},
                           {"layers", {st.layers.begin, st.layers.end}},
                           {"ms_per_position", st.ms_per_position()},
                           {"sent_bytes_per_position", st.bytes_per_position()},
                           {"rss_bytes", st.after.rss_bytes},
                           {"peak_rss_bytes", st.after.peak_rss_bytes}});
  }
  return j;
}

// One horizontal bar a stage, each as long as its value is of the largest.
std::string bar_chart(const std::string& title, const MeshRun& run, double (*value)(const Stage&), const char* unit) {
  const int row = 26, label = 220, width = 420;
  double max = 0;
  for (const Stage& st : run.stages) max = std::max(max, value(st));
  std::string svg = "<h2>" + html_escape(title) + "</h2>\n<svg width=\"" + std::to_string(label + width + 120) +
                    "\" height=\"" + std::to_string(row * int(run.stages.size()) + 8) + "\" role=\"img\">\n";
  for (std::size_t i = 0; i < run.stages.size(); i++) {
    const Stage& st = run.stages[i];
    const double v = value(st);
    const int y = int(i) * row + 4;
    const int w = max > 0 ? int(width * v / max) : 0;
    char figure[64];
    std::snprintf(figure, sizeof figure, "%.3g %s", v, unit);
    svg += "<text x=\"0\" y=\"" + std::to_string(y + 16) + "\">" + html_escape(st.node) + " (" +
           discovery::format_range(st.layers) + ")</text>";
    svg += "<rect x=\"" + std::to_string(label) + "\" y=\"" + std::to_string(y) + "\" width=\"" + std::to_string(w) +
           "\" height=\"20\" fill=\"#4a7bd0\"/>";
    svg += "<text x=\"" + std::to_string(label + w + 6) + "\" y=\"" + std::to_string(y + 16) + "\">" + figure + "</text>\n";
  }
  return svg + "</svg>\n";
}

void write_report(const MeshRun& run, const MeshBenchOptions& opt) {
  char headline[256];
  std::snprintf(headline, sizeof headline,
                "%zu stages via %s: %.1f tok/s (best of %d, %d tokens), first token %.1f ms; network %.3f ms a hop, "
                "%.1f hops a token",
                run.stages.size(), run.peer.c_str(), run.best.decode_tokens_per_s(), opt.reps, opt.gen_tokens,
                run.best.first_token_ms, run.hop_ms, run.hops_per_token);
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::string html =
      "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>troupe pipeline</title>\n"
      "<style>body{font:14px system-ui,sans-serif;margin:24px;color:#222}h2{font-size:15px;margin:22px 0 6px}"
      "svg text{font:13px system-ui,sans-serif;fill:#222}.dim{color:#666}</style></head><body>\n"
      "<h1>troupe pipeline</h1>\n<p>" + html_escape(headline) + "</p>\n<p class=\"dim\">client on " +
      html_escape(this_machine()) + ", " + date + ", troupe " + kVersion + " (commit " + kCommit + ")</p>\n";
  html += bar_chart("Compute, ms a position", run, [](const Stage& s) { return s.ms_per_position(); }, "ms");
  html += bar_chart("Sent, bytes a position", run, [](const Stage& s) { return s.bytes_per_position(); }, "B");
  html += bar_chart("Memory (resident)", run, [](const Stage& s) { return double(s.after.rss_bytes) / (1 << 20); }, "MiB");
  html += "</body></html>\n";
  std::ofstream(opt.report, std::ios::trunc) << html;
  std::fprintf(stderr, "troupe: report written to %s\n", opt.report.c_str());
}

int bench_mesh(const MeshBenchOptions& opt) {
  if (opt.gen_tokens < 2) throw InputError("--gen-tokens: must be 2 or more with --mesh");
  if (opt.reps < 1) throw InputError("--reps: must be 1 or more");
  if (!opt.report.empty() && !std::ofstream(opt.report, std::ios::app)) {
    throw InputError("--report " + opt.report + ": cannot write this file");
  }
  const MeshRun run = measure(opt);
  if (opt.json) {
    std::printf("%s\n", run_json(run).dump(2).c_str());
  } else {
    print_table(run, opt);
  }
  if (!opt.report.empty()) write_report(run, opt);
  return 0;
}

}  // namespace

MeshBench add_bench_mesh(CLI::App* bench) {
  auto opt = std::make_shared<MeshBenchOptions>();
  bench->add_option("--mesh", opt->peer,
                    "Measure a mesh's pipeline through this peer (HOST:PORT or a join token) instead of model files");
  add_mesh_flags(bench, opt->mesh);
  return [opt](const BenchSettings& settings) -> std::optional<int> {
    if (opt->peer.empty()) return std::nullopt;
    if (settings.with_models) throw InputError("--mesh: measures the mesh's own model; give no model files with it");
    static_cast<BenchSettings&>(*opt) = settings;
    return bench_mesh(*opt);
  };
}

}  // namespace troupe::cli
