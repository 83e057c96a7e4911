// One device of the mesh (`troupe node`): a CAF actor system holding the node's actors (see
// src/actors.hpp), over a ZeroMQ transport listening at options.listen.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "troupe/runtime/model.hpp"
#include "troupe/runtime/tokenizer.hpp"
#include "troupe/runtime/wire.hpp"

namespace troupe {

struct NodeOptions {
  std::string listen;                 // host:port
  std::string name;                   // default: the listen address
  std::vector<std::string> joins;     // host:port of nodes to introduce ourselves to
  std::optional<LayerRange> layers;   // the stage held here; none: an entry point only
  int threads = 0;                    // the forward pass's thread pool; 0 = one per core
  wire::ActivationEncoding activations = wire::ActivationEncoding::f32;
};

// Identifies a model's shape, so that nodes of different models never form one mesh.
std::string model_fingerprint(const ModelConfig& config);

class Node {
 public:
  // `model` holds the weights of options.layers (only its config when there are none); both
  // it and `tokenizer` must outlive the Node. Throws InputError / RuntimeFailure when it cannot
  // listen at options.listen.
  Node(NodeOptions options, const Model& model, const Tokenizer& tokenizer);
  ~Node();  // stop()s
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Closes the connections, ends every session and actor, and waits for them.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
