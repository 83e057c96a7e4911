// What every actor of a node reads and never changes: who the node is, its model, its tokenizer,
// its thread pool and clock. Owned by Node, which outlives the actors.
#pragma once

#include <optional>
#include <string>

#include "troupe/runtime/model.hpp"
#include "troupe/runtime/thread_pool.hpp"
#include "troupe/runtime/tokenizer.hpp"
#include "troupe/runtime/transport.hpp"
#include "troupe/runtime/wire.hpp"

namespace troupe::actors {

struct NodeContext {
  std::string name;
  std::string address;               // where it listens; also how peers name it
  std::optional<LayerRange> layers;  // the stage it holds, if any
  std::string model_fingerprint;
  const Model* model = nullptr;      // config always; weights of `layers` only
  const Tokenizer* tokenizer = nullptr;
  ThreadPool* pool = nullptr;
  const Clock* clock = nullptr;
  wire::ActivationEncoding encoding = wire::ActivationEncoding::f32;
};

}  // namespace troupe::actors
