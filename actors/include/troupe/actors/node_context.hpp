// What every actor of a node reads and never changes: who the node is, its model, its tokenizer,
// its clock and randomness, and where the simulator reaches in. Owned by its host (Node; the simulator's node),
// which outlives the actors.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "troupe/discovery/mesh.hpp"
#include "troupe/discovery/sim_hook.hpp"
#include "troupe/model/model.hpp"
#include "troupe/model/stage_model.hpp"
#include "troupe/protocol/drop_log.hpp"
#include "troupe/protocol/transport.hpp"
#include "troupe/protocol/wire.hpp"
#include "troupe/text/tokenizer.hpp"

namespace troupe::actors {

// Counters the actors add to as they work (relaxed atomics: read by status at any time), and the
// frames they dropped (counted there, logged sparingly: drop_frame in actors/src/actors.hpp).
struct NodeMetrics {
  std::atomic<uint64_t> sessions_total{0}, tokens_generated{0}, stage_positions{0};
  std::atomic<uint64_t> stage_compute_ns{0}, hops{0}, hop_ns{0};
  std::atomic<uint64_t> sessions_resumed{0}, positions_kept{0};
  std::atomic<uint64_t> stage_passes{0}, stage_pass_sessions{0};  // batched passes, sessions in them
  DropLog dropped_frames;
};

struct NodeContext {
  std::string name;
  std::string address;                 // where it listens; also how peers name it
  wire::MemberInfo member;             // what it advertises at start (layers: none loaded yet)
  std::vector<std::string> joins;
  discovery::MeshConfig mesh;
  const ModelConfig* config = nullptr;
  // The pinned range's layers, loaded at start, when there is one.
  std::shared_ptr<const StageModel> initial;
  // Loads the weights of a range (in the stage's thread); throws on failure.
  std::function<std::shared_ptr<const StageModel>(LayerRange)> load_layers;
  const Tokenizer* tokenizer = nullptr;
  const Clock* clock = nullptr;
  uint64_t seed = 0;  // the membership's random choices
  // Session ids (unguessable on a device: whoever knows one can address its session's frames).
  RandomSource* random = nullptr;
  wire::ActivationEncoding encoding = wire::ActivationEncoding::f32;
  NodeMetrics* metrics = nullptr;  // the one mutable thing the actors share
  // The transport's frames and bytes so far: {sent frames, sent bytes, received frames, bytes}.
  std::function<std::array<uint64_t, 4>()> traffic;
  // The process's resident bytes now and at its peak (a device: /proc; unset in the simulator).
  std::function<std::array<uint64_t, 2>()> memory;
  // Where the simulator reaches in (the device's busy time, the mesh after every event, broken
  // variants); does nothing on a device. Must outlive the actors.
  discovery::SimHook* sim_hook = &discovery::SimHook::none();
};

}  // namespace troupe::actors
