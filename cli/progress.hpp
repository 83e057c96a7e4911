// Progress of a long job (writing or loading a model file) on stderr: one line redrawn in place,
// shown only when stderr is a terminal (scripts and logs see nothing) and only once the job has
// taken more than a moment. Never touches stdout.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "troupe/model/model.hpp"

namespace troupe::cli {

class Progress {
 public:
  // `total_bytes` may be 0 when unknown (no percentage then).
  Progress(std::string label, uint64_t total_bytes);
  ~Progress();  // ends the line if finish() was not called (an error is coming)
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Bytes done so far; redraws at most a few times a second. Call from one thread.
  void update(uint64_t done);
  // Draws the final state (total, time, rate) and ends the line.
  void finish();
  void set_total(uint64_t total_bytes) { total_ = total_bytes; }
  bool shown() const { return enabled_; }

 private:
  void draw(bool final);

  std::string label_;
  uint64_t total_ = 0;
  uint64_t done_ = 0;
  bool enabled_ = false;
  bool drawn_ = false;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

// load_model with its progress shown ("loading PATH").
Model load_model_showing_progress(const std::string& path, LoadOptions options);

// "1.23 GB", "456.7 MB", "12.0 kB", "512 B" (powers of 1000).
std::string format_bytes(uint64_t bytes);

}  // namespace troupe::cli
