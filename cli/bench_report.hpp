// `troupe bench --report FILE.html`: one self-contained page (inline SVG, no script, nothing
// fetched) with the run's figures as charts: prompt and generation tok/s per model, type and
// thread count, the memory-bandwidth bound beside each generation bar, and other engines' figures
// (`--compare`, e.g. llama.cpp's from bench/llamacpp.mjs) beside troupe's.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace troupe::cli {

// The q-quantile of sorted values (nearest rank); 0 when there are none.
inline double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, std::size_t(q * double(sorted.size())))];
}

// One model at one thread count, as `troupe bench` measured it.
struct BenchRow {
  std::string model, type;
  int threads = 0;
  double prompt_tps = 0, gen_tps = 0, ms_per_token = 0, peak_rss_mib = 0;
  double weights_mb = 0, read_gbps = 0, bound_tps = 0;
  double read_gbps_min = 0, read_gbps_max = 0;  // every probe of the paired pass
  // Each paired token's GB/s of weights over the mean of the probes either side of it, sorted;
  // and the same for the tokens whose probes were at least 80% of the highest pair's: the ratio
  // when the machine gave its most bandwidth (it need not, in a given run).
  std::vector<double> token_over_probe, at_high_bandwidth;
  bool in_cache = false;  // small enough to stay in the caches: no memory bound applies
  double of_bound() const { return quantile(token_over_probe, 0.5); }
  double of_bound_at_high_bandwidth() const { return quantile(at_high_bandwidth, 0.5); }
};

// Another engine's figures for a model file and thread count.
struct ComparisonRow {
  std::string engine, model;
  int threads = 0;
  double prompt_tps = 0, gen_tps = 0;
};

// Reads --compare FILE: JSON objects, one a line or in an array, each {engine, model, threads,
// prompt_tok_s, gen_tok_s} (what bench/llamacpp.mjs prints). InputError naming the file and line.
std::vector<ComparisonRow> read_comparison(const std::string& path);

struct ReportContext {
  std::string machine;   // CPU model, cores
  std::string date;      // UTC
  std::string version;   // troupe version and commit
  std::string settings;  // prompt and generation lengths, repetitions, ISA
};

std::string bench_report_html(const std::vector<BenchRow>& rows, const std::vector<ComparisonRow>& others,
                              const ReportContext& context);

// Text as HTML shows it, in element text or a quoted attribute.
std::string html_escape(const std::string& s);

// What /proc/cpuinfo names this machine's CPU, and its cores online.
std::string this_machine();

}  // namespace troupe::cli
