// `troupe bench`: how fast this machine runs a model, against what its memory allows.
//
// Generation streams every weight once per token, so tok/s <= read bandwidth / weight bytes per
// token. Each repetition runs a prompt of --prompt-tokens as one batch and --gen-tokens greedy
// steps after it; the table gives the best prompt and generation tokens/s, ms/token and peak RSS.
// The ratio to the bound comes from one more pass that pairs every generated token with the read
// bandwidth (bench/memory_bandwidth.hpp, the same threads) measured just before and just after
// it. The tokens are fixed ids, so no tokenizer is needed and runs compare.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <filesystem>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_mesh.hpp"
#include "bench_report.hpp"
#include "commands.hpp"
#include "memory_bandwidth.hpp"
#include "model_paths.hpp"
#include "progress.hpp"
#include "version.hpp"
#include "troupe/kernels/kernels.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/model.hpp"
#include "troupe/model/thread_pool.hpp"
#include "troupe/model/transformer.hpp"
#include "troupe/model/weight_types.hpp"
#include "troupe/text/sampler.hpp"

namespace troupe::cli {

namespace {

struct BenchOptions {
  std::vector<std::string> models;
  std::vector<int> threads;
  int prompt_tokens = 64;
  int gen_tokens = 32;
  int reps = 3;
  std::size_t bandwidth_mib = 256;
  std::string quantize;
  bool json = false;
  std::string report;                // --report FILE.html
  std::vector<std::string> compare;  // --compare FILE: other engines' figures for the report
};

using Row = BenchRow;

// The peak resident memory since the last reset_peak_rss() (VmHWM; Linux resets it on
// "5" > /proc/self/clear_refs), so neither the bandwidth probe's buffer nor an earlier model
// counts towards a model's figure. Where the reset is not possible, the process's peak.
void reset_peak_rss() {
  if (std::FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
    std::fputs("5", f);
    std::fclose(f);
  }
}

double peak_rss_mib() {
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    long kib = -1;
    while (std::fgets(line, sizeof line, f)) {
      if (std::sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
    }
    std::fclose(f);
    if (kib >= 0) return kib / 1024.0;
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The type of the layers' matrices (what generation mostly reads).
std::string weights_type(const Model& m) {
  return m.layers.empty() ? "?" : weight_type_name(m.layers.front().wq.type);
}

// Fixed, spread-out token ids: BOS, then a walk over the vocabulary.
std::vector<int> prompt_ids(int count, int vocab) {
  std::vector<int> ids(count);
  for (int i = 0; i < count; i++) ids[i] = i == 0 ? 1 : 3 + int((int64_t(i) * 7919) % (vocab - 3));
  return ids;
}

// Generates `count` greedy tokens after the prompt, one at a time, with a bandwidth probe before
// each and after the last, and fills the row's bound from them. On a shared machine the read
// bandwidth moves by 2x within a second (this project's VM flips between about 30 and 50 GB/s,
// and a repetition of 32 tokens may see both), so a bound measured once, or even before and after
// a repetition, can be from another moment than the tokens it bounds: each token is set against
// the probes on either side of it, a few milliseconds away, and the row reports the median (and,
// apart, the median over the tokens that met the run's highest bandwidth: the harder case).
void pair_tokens_with_probes(Transformer& transformer, Sampler& greedy, const std::vector<int>& prompt,
                             int count, bench::ReadProbe& probe, Row& r) {
  int token = greedy.sample(transformer.forward_batch(prompt, 0));
  const int pos = static_cast<int>(prompt.size());
  std::vector<double> probes{probe.read().gbps}, token_gbps, around;  // around: the probes' mean
  for (int g = 0; g < count; g++) {
    const auto t0 = std::chrono::steady_clock::now();
    token = greedy.sample(transformer.forward(token, pos + g));
    token_gbps.push_back(r.weights_mb / 1e3 / seconds_since(t0));
    probes.push_back(probe.read().gbps);
    around.push_back(0.5 * (probes[g] + probes[g + 1]));
  }
  const double highest = *std::max_element(around.begin(), around.end());
  for (int g = 0; g < count; g++) {
    r.token_over_probe.push_back(token_gbps[g] / around[g]);
    if (around[g] >= 0.8 * highest) r.at_high_bandwidth.push_back(token_gbps[g] / around[g]);
  }
  std::sort(r.token_over_probe.begin(), r.token_over_probe.end());
  std::sort(r.at_high_bandwidth.begin(), r.at_high_bandwidth.end());
  std::sort(probes.begin(), probes.end());
  r.read_gbps = quantile(probes, 0.5);
  r.read_gbps_min = probes.front();
  r.read_gbps_max = probes.back();
  r.bound_tps = r.read_gbps * 1e3 / r.weights_mb;
}

Row bench_model(const Model& model, const std::string& name, int threads, const BenchOptions& opt) {
  const ModelConfig& c = model.config;
  const int context = opt.prompt_tokens + opt.gen_tokens;
  if (context > c.seq_len) {
    throw InputError("--prompt-tokens + --gen-tokens: " + std::to_string(context) + " positions exceed " + name +
                     "'s context of " + std::to_string(c.seq_len));
  }
  ThreadPool pool(threads);
  Transformer transformer(model, LayerRange{0, c.n_layers}, context, pool);
  Sampler greedy(c.vocab_size, 0.0f, 0.9f, 1);
  const std::vector<int> prompt = prompt_ids(opt.prompt_tokens, c.vocab_size);
  double best_prompt = 1e30, best_gen = 1e30, peak_mib = 0;
  for (int rep = 0; rep < opt.reps; rep++) {
    reset_peak_rss();
    auto t0 = std::chrono::steady_clock::now();
    float* logits = transformer.forward_batch(prompt, 0);
    best_prompt = std::min(best_prompt, seconds_since(t0));
    int token = greedy.sample(logits);
    t0 = std::chrono::steady_clock::now();
    for (int g = 0; g < opt.gen_tokens; g++) token = greedy.sample(transformer.forward(token, opt.prompt_tokens + g));
    best_gen = std::min(best_gen, seconds_since(t0));
    peak_mib = std::max(peak_mib, peak_rss_mib());
  }
  Row r;
  r.model = name;
  r.type = weights_type(model);
  r.threads = pool.size();
  r.prompt_tps = opt.prompt_tokens / best_prompt;
  r.gen_tps = opt.gen_tokens / best_gen;
  r.ms_per_token = 1000 * best_gen / opt.gen_tokens;
  r.peak_rss_mib = peak_mib;  // measured before the probe's buffer exists
  r.weights_mb = double(model.bytes_per_token()) / 1e6;
  r.in_cache = r.weights_mb < 64;
  bench::ReadProbe probe(unsigned(pool.size()), opt.bandwidth_mib);
  pair_tokens_with_probes(transformer, greedy, prompt, opt.gen_tokens, probe, r);
  return r;
}

void print_table(const std::vector<Row>& rows, const BenchOptions& opt) {
  std::printf("| model | type | threads | prompt tok/s | generation tok/s | ms/token | peak RSS (MiB) | "
              "weights/token (MB) | read GB/s | bound (tok/s) | of bound | prompt/gen |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& r : rows) {
    char ratio[32];
    if (r.in_cache) {
      std::snprintf(ratio, sizeof ratio, "(in cache)");
    } else {
      std::snprintf(ratio, sizeof ratio, "%.0f%%", 100 * r.of_bound());
    }
    std::printf("| %s | %s | %d | %.1f | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f | %s | %.1fx |\n", r.model.c_str(),
                r.type.c_str(), r.threads, r.prompt_tps, r.gen_tps, r.ms_per_token, r.peak_rss_mib, r.weights_mb,
                r.read_gbps, r.bound_tps, ratio, r.prompt_tps / r.gen_tps);
  }
  std::printf("\nprompt: %d tokens as one batch; generation: %d greedy tokens after it; best of %d, uninterrupted; isa %s.\n"
              "of bound: one more pass of the %d tokens, each timed alone between two bandwidth probes, its GB/s "
              "of weights over the mean of those probes, the median; read GB/s the median probe, bound = read "
              "GB/s / weights read per token\n",
              opt.prompt_tokens, opt.gen_tokens, opt.reps,
              std::string(kernels::isa_name(kernels::detected_isa())).c_str(), opt.gen_tokens);
  for (const Row& r : rows) {
    std::printf("%s, %d thread%s: probes %.1f-%.1f GB/s", r.model.c_str(), r.threads, r.threads == 1 ? "" : "s",
                r.read_gbps_min, r.read_gbps_max);
    if (!r.in_cache) {
      std::printf("; token/probe %.0f%%-%.0f%% (quartiles), %.0f%% at probes >= 80%% of the highest (%zu tokens)",
                  100 * quantile(r.token_over_probe, 0.25), 100 * quantile(r.token_over_probe, 0.75),
                  100 * r.of_bound_at_high_bandwidth(), r.at_high_bandwidth.size());
    }
    std::printf("\n");
  }
}

void print_json(const std::vector<Row>& rows) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const Row& r : rows) {
    out.push_back({{"model", r.model},
                   {"type", r.type},
                   {"threads", r.threads},
                   {"prompt_tokens_per_s", r.prompt_tps},
                   {"generation_tokens_per_s", r.gen_tps},
                   {"ms_per_token", r.ms_per_token},
                   {"peak_rss_mib", r.peak_rss_mib},
                   {"weights_mb_per_token", r.weights_mb},
                   {"read_gbps", r.read_gbps},
                   {"read_gbps_range", {r.read_gbps_min, r.read_gbps_max}},
                   {"bound_tokens_per_s", r.bound_tps},
                   {"of_bound", r.in_cache ? nlohmann::ordered_json(nullptr)
                                           : nlohmann::ordered_json(r.of_bound())},
                   {"token_over_probe", r.token_over_probe},
                   {"of_bound_at_high_bandwidth", r.in_cache ? nlohmann::ordered_json(nullptr)
                                                             : nlohmann::ordered_json(r.of_bound_at_high_bandwidth())},
                   {"prompt_over_generation", r.prompt_tps / r.gen_tps}});
  }
  std::printf("%s\n", out.dump(2).c_str());
}

void write_report(const BenchOptions& opt, const std::vector<Row>& rows, const std::vector<ComparisonRow>& others) {
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  ReportContext context;
  context.machine = this_machine();
  context.date = date;
  context.version = std::string("troupe ") + kVersion + " (commit " + kCommit + ")";
  context.settings = "prompt " + std::to_string(opt.prompt_tokens) + " tokens as one batch, " +
                     std::to_string(opt.gen_tokens) + " greedy tokens generated, best of " + std::to_string(opt.reps) +
                     ", isa " + std::string(kernels::isa_name(kernels::detected_isa()));
  std::ofstream(opt.report, std::ios::trunc) << bench_report_html(rows, others, context);
  std::fprintf(stderr, "troupe: report written to %s\n", opt.report.c_str());
}

int bench(BenchOptions opt, const MeshBench& mesh) {
  const BenchSettings settings{opt.gen_tokens, opt.reps, opt.json, opt.report, !opt.models.empty()};
  if (const auto done = mesh(settings)) return *done;
  if (opt.models.empty()) throw InputError("troupe bench: give model files, or --mesh PEER");
  if (opt.prompt_tokens < 1 || opt.gen_tokens < 1) throw InputError("--prompt-tokens and --gen-tokens: must be 1 or more");
  if (opt.reps < 1) throw InputError("--reps: must be 1 or more");
  if (opt.threads.empty()) opt.threads.push_back(0);
  for (int t : opt.threads) {
    if (t < 0) throw InputError("--threads: must be 0 (all cores) or more");
  }
  LoadOptions load;
  if (!opt.quantize.empty()) load.quantize = parse_weight_type(opt.quantize, "--quantize");
  // Everything read and checked before anything is measured.
  if (!opt.compare.empty() && opt.report.empty()) throw InputError("--compare: goes with --report FILE.html");
  std::vector<ComparisonRow> others;
  for (const auto& file : opt.compare) {
    const auto rows = read_comparison(file);
    others.insert(others.end(), rows.begin(), rows.end());
  }
  if (!opt.report.empty() && !std::ofstream(opt.report, std::ios::app)) {
    throw InputError("--report " + opt.report + ": cannot write this file");
  }
  std::vector<std::string> paths;
  for (const auto& name : opt.models) paths.push_back(resolve_model(name));
  std::vector<Row> rows;
  for (const auto& path : paths) {
    reset_peak_rss();
    const Model model = load_model_showing_progress(path, load);
    for (std::size_t i = 0; i < opt.threads.size(); i++) {
      rows.push_back(bench_model(model, std::filesystem::path(path).filename().string(), opt.threads[i], opt));
    }
  }
  if (opt.json) {
    print_json(rows);
  } else {
    print_table(rows, opt);
  }
  if (!opt.report.empty()) write_report(opt, rows, others);
  return 0;
}

}  // namespace

Action add_bench_command(CLI::App& app) {
  auto opt = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prompt and generation speed against the memory-bandwidth bound");
  cmd->add_option("model", opt->models, "Model files (GGUF or llama2.c checkpoints) or names");
  cmd->add_option("--threads", opt->threads, "Threads, one or more (e.g. 1,2); 0 = all cores (default)")
      ->delimiter(',');
  cmd->add_option("--prompt-tokens", opt->prompt_tokens, "Prompt length, run as one batch (default 64)");
  cmd->add_option("--gen-tokens", opt->gen_tokens, "Tokens generated after the prompt (default 32)");
  cmd->add_option("--reps", opt->reps, "Repetitions; the best is reported (default 3)");
  cmd->add_option("--bandwidth-mib", opt->bandwidth_mib, "Buffer of each bandwidth probe, far above the caches (default 256)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  cmd->add_option("--quantize", opt->quantize, quantize_flag_help())
      ->check(CLI::IsMember(quantize_on_load_types()));
  cmd->add_flag("--json", opt->json, "Print a JSON array instead of the table");
  cmd->add_option("--report", opt->report, "Also write the figures as charts to this HTML file (self-contained)");
  cmd->add_option("--compare", opt->compare,
                  "Another engine's figures for the report: JSON lines {engine, model, threads, prompt_tok_s, "
                  "gen_tok_s}, as bench/llamacpp.mjs prints");
  const MeshBench mesh = add_bench_mesh(cmd);
  return [opt, mesh] { return bench(*opt, mesh); };
}

}  // namespace troupe::cli
