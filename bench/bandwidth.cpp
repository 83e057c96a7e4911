// troupe-bandwidth: this machine's memory READ bandwidth, measured the way token generation uses
// it (memory_bandwidth.hpp says how). `troupe bench` measures it too, beside each model's speed.
//
//   troupe-bandwidth [--threads N] [--mib 1024] [--reps 10] [--json]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "memory_bandwidth.hpp"

int main(int argc, char** argv) {
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  size_t mib = 1024;
  int reps = 10;
  bool json = false;

  CLI::App app{"Measure memory read bandwidth the way a matrix-vector product reads weights"};
  app.add_option("--threads", threads, "reader threads (default: all cores)")->check(CLI::Range(1u, 1024u));
  app.add_option("--mib", mib, "buffer size in MiB; keep it far above the last-level cache")
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_option("--reps", reps, "repetitions; the best one is reported")->check(CLI::Range(1, 1000));
  app.add_flag("--json", json, "print one JSON line instead of text");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "troupe-bandwidth: %s\n", e.what());
    return 2;
  }
  troupe::bench::ReadBandwidth r;
  try {
    r = troupe::bench::measure_read_bandwidth(threads, mib, reps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe-bandwidth: %s\n", e.what());
    return 1;
  }
  const double used_mib = static_cast<double>(r.bytes) / (1 << 20);
  if (json) {
    std::printf("{\"read_gbps\":%.2f,\"threads\":%u,\"mib\":%.0f,\"reps\":%d,\"best_s\":%.6f,\"isa\":\"%s\"}\n",
                r.gbps, threads, used_mib, reps, r.seconds, r.isa.c_str());
  } else {
    std::printf("read bandwidth: %.1f GB/s (%u thread%s, %.0f MiB, best of %d, %s)\n", r.gbps, threads,
                threads == 1 ? "" : "s", used_mib, reps, r.isa.c_str());
  }
  return 0;
}
