#include "progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace troupe::cli {

std::string format_bytes(uint64_t bytes) {
  char buf[32];
  const double b = static_cast<double>(bytes);
  if (bytes >= 1000ull * 1000 * 1000) {
    std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
  } else if (bytes >= 1000ull * 1000) {
    std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  } else if (bytes >= 1000) {
    std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  }
  return buf;
}

Progress::Progress(std::string label, uint64_t total_bytes)
    : label_(std::move(label)), total_(total_bytes), enabled_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress::~Progress() {
  if (enabled_ && drawn_ && !finished_) {
    std::fputs("\n", stderr);
    std::fflush(stderr);
  }
}

void Progress::update(uint64_t done) {
  done_ = done;
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  // Nothing for a job that takes only a moment; then a few redraws a second.
  if (!drawn_ && now - start_ < std::chrono::milliseconds(500)) return;
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(false);
}

void Progress::finish() {
  if (finished_) return;
  if (enabled_ && drawn_) {
    if (total_ > 0) done_ = total_;
    draw(true);
    std::fputs("\n", stderr);
    std::fflush(stderr);
  }
  finished_ = true;
}

void Progress::draw(bool final) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string line = "\r" + label_ + ": ";
  char buf[96];
  if (total_ > 0) {
    std::snprintf(buf, sizeof buf, "%3d%% ", static_cast<int>(100.0 * done_ / total_));
    line += buf;
    line += format_bytes(done_) + " of " + format_bytes(total_);
  } else {
    line += format_bytes(done_);
  }
  if (seconds > 0.05) {
    std::snprintf(buf, sizeof buf, ", %s/s, %.1f s", format_bytes(static_cast<uint64_t>(done_ / seconds)).c_str(),
                  seconds);
    line += buf;
  }
  if (!final) line += "   ";
  line += "\x1b[K";  // clear what a longer earlier line left
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  drawn_ = true;
}

Model load_model_showing_progress(const std::string& path, LoadOptions options) {
  Progress progress("loading " + path, 0);
  options.progress = [&](uint64_t done, uint64_t total) {
    progress.set_total(total);
    progress.update(done);
  };
  Model model = load_model(path, options);
  progress.finish();
  return model;
}

}  // namespace troupe::cli
