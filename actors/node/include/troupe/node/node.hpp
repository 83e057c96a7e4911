// One device of the mesh (`troupe node`): a CAF actor system holding the node's actors
// (actors/node_actors.hpp), over a ZeroMQ transport listening at options.listen.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "troupe/model/model.hpp"
#include "troupe/net/mesh_key.hpp"
#include "troupe/protocol/wire.hpp"
#include "troupe/text/tokenizer.hpp"

namespace troupe {

struct NodeOptions {
  std::string listen;                 // host:port
  std::string advertise;              // host:port peers dial; default: the listen address
  std::string name;                   // default: the advertised address
  std::vector<std::string> joins;     // host:port of members to join through
  // The mesh's keys, or none (--insecure); required: a node never picks a mesh by default.
  std::optional<net::MeshSecurity> security;
  std::optional<LayerRange> layers;   // --layers: pinned by hand; none: the coordinator decides
  uint64_t mem_budget = 0;            // bytes for weights and caches; 0: the memory available
  double throughput = 0;              // GB/s advertised to the planner; 0: measured at start
  int threads = 0;                    // the forward pass's thread pool; 0 = one per core
  wire::ActivationEncoding activations = wire::ActivationEncoding::f32;
  LoadOptions load;                   // how stages load their layers (mmap, quantize)
  int discover_port = 0;              // --discover: LAN beacons on this UDP port; 0: off
};

class Node {
 public:
  // `model` is the node's model file with the weights of options.layers in place (only its
  // config when there are none); ranges the coordinator assigns later are loaded from
  // model.path. `model` and `tokenizer` must outlive the Node. Throws InputError /
  // RuntimeFailure when it cannot listen at options.listen.
  Node(NodeOptions options, std::shared_ptr<const Model> model, const Tokenizer& tokenizer);
  ~Node();  // stop()s
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Tells the mesh this node leaves, closes the connections, ends every session and actor, and
  // waits for them.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
