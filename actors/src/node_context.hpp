// What every actor of a node reads and never changes: who the node is, its model, its tokenizer,
// its thread pool and clock. Owned by Node, which outlives the actors.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "troupe/discovery/mesh.hpp"
#include "troupe/runtime/model.hpp"
#include "troupe/runtime/thread_pool.hpp"
#include "troupe/runtime/tokenizer.hpp"
#include "troupe/runtime/transport.hpp"
#include "troupe/runtime/wire.hpp"

namespace troupe::actors {

struct NodeContext {
  std::string name;
  std::string address;                 // where it listens; also how peers name it
  wire::MemberInfo member;             // what it advertises at start (layers: none loaded yet)
  std::vector<std::string> joins;
  discovery::MeshConfig mesh;
  const ModelConfig* config = nullptr;
  // The weights of `layers` (the pinned range's, loaded at start, when there is one).
  std::shared_ptr<const Model> initial;
  // Loads the weights of a range (in the stage's thread); throws on failure.
  std::function<std::shared_ptr<const Model>(LayerRange)> load_layers;
  const Tokenizer* tokenizer = nullptr;
  ThreadPool* pool = nullptr;
  const Clock* clock = nullptr;
  uint64_t seed = 0;  // the membership's random choices
  wire::ActivationEncoding encoding = wire::ActivationEncoding::f32;
};

}  // namespace troupe::actors
