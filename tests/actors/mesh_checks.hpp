// What the actor tests check of a MemoryMesh: agreement, a client's answer, and a request.
#pragma once

#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include <optional>
#include <string>

#include "memory_mesh.hpp"

namespace troupe::testing {

// Whether every node follows one coordinator, of the same term, and one plan whose stages cover
// the model; and each node serves (it has a live route).
inline bool agreed(MemoryMesh& mesh) {
  for (std::size_t i = 0; i < mesh.size(); i++) {
    const TestNode& n = mesh.node(int(i));
    if (!n.watch.last) return false;
    const discovery::Mesh& m = n.mesh();
    const discovery::Mesh& first = mesh.node(0).mesh();
    if (m.leadership().coordinator.empty() || !(m.leadership() == first.leadership())) return false;
    if (m.plan().version == 0 || m.plan().version != first.plan().version || m.route().empty()) return false;
  }
  return true;
}

// The text a client received on `route`, when the answer is complete (a Done came last).
inline std::optional<std::string> answer(MemoryMesh& mesh, const std::string& route) {
  std::string text;
  for (const auto& m : mesh.replies(route)) {
    if (const auto* t = std::get_if<wire::Text>(&m.body)) text += t->text;
    if (std::holds_alternative<wire::Done>(m.body)) return text;
    if (const auto* e = std::get_if<wire::Error>(&m.body)) FAIL("the node answered with an error: " << e->message);
  }
  return std::nullopt;
}

inline wire::GenerateRequest request(const std::string& prompt, int tokens, uint64_t seed) {
  wire::GenerateRequest r;
  r.prompt = prompt;
  r.max_tokens = tokens;
  r.sampling.temperature = 1.0f;
  r.sampling.topp = 0.9f;
  r.sampling.seed = seed;
  return r;
}

struct QuietLog {
  QuietLog() { spdlog::set_level(spdlog::level::err); }
  ~QuietLog() { spdlog::set_level(spdlog::level::info); }
};

}  // namespace troupe::testing
