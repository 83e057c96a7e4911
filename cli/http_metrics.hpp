// What GET /metrics reports (Prometheus text): the HTTP door's own counters (requests,
// completions and their tokens, connections) and the node's, from its status.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "troupe/protocol/wire.hpp"
#include "troupe/text/generate.hpp"

namespace troupe::cli {

// The door's connections, as GuardedHttpServer counts them.
struct ConnectionCounts {
  std::size_t open = 0;
  uint64_t refused = 0;
};

class HttpMetrics {
 public:
  void request(const std::string& path, int status);
  void completed(const GenerationStats& s, const std::string& finish_reason);
  std::atomic<int> active{0};  // completions in flight through this door

  std::string render(const std::optional<wire::Status>& status, ConnectionCounts connections);

 private:
  void render_door(std::string& out, ConnectionCounts connections);
  static void render_node(std::string& out, const wire::Status& status);

  std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, uint64_t> completions_;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0, decode_tokens_ = 0;
  double decode_seconds_ = 0, first_token_seconds_ = 0, last_tokens_per_s_ = 0;
};

}  // namespace troupe::cli
