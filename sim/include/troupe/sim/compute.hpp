// The simulator's compute model: what a device can hold and how fast it runs a model's layers,
// so that a simulated answer takes about the time it would on real hardware.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "troupe/discovery/planner.hpp"
#include "troupe/model/model.hpp"

namespace troupe::sim {

using Nanos = std::chrono::nanoseconds;

// A kind of device. Figures are round numbers near what such a board measures, not vendor peaks:
// the simulator is after realistic orders of magnitude and ratios between devices.
struct DeviceProfile {
  std::string name;
  uint64_t memory = 0;           // bytes of RAM
  double mem_bandwidth = 0;      // bytes/s a kernel streams weights at
  int cores = 0;
  double flops_per_core = 0;     // sustained FLOP/s of one core in the matmul kernels
  double storage_bandwidth = 0;  // bytes/s read from storage when loading weights
  // What the node advertises, as `troupe node` would: its memory less what the OS keeps, and
  // its kernels' read speed in GB/s.
  uint64_t mem_budget() const;
  double throughput() const { return mem_bandwidth / 1e9; }
};

// Built-in profiles: rpi4, rpi5, laptop, desktop, milkv-duo, jetson-nano. InputError naming
// `key` for an unknown name.
const DeviceProfile& device_profile(const std::string& name, const std::string& key);
std::vector<std::string> device_profile_names();

// A model of a shape `troupe synth` knows, at a weight type, priced per layer.
struct ModelSpec {
  std::string shape = "stories15m";
  std::string type = "f32";
};

struct ModelPrice {
  ModelConfig config;
  uint64_t layer_params = 0;  // weights of one layer
  uint64_t layer_bytes = 0;
  uint64_t embedding_bytes = 0;
  uint64_t head_bytes = 0;    // the classifier (the embedding again when tied) and final norm
  discovery::ModelCost cost;  // what the planner is told, as actors/src/node.cpp computes it
};

// InputError naming `key` when the shape or type is unknown.
ModelPrice price_model(const ModelSpec& spec, const std::string& key);

// Time for one stage to run `positions` positions through `layers` (a batch: the prompt, or a
// replay): streaming the weights once bounds decoding, the arithmetic bounds long batches.
Nanos stage_time(const DeviceProfile& device, const ModelPrice& model, LayerRange layers,
                 int positions);
// Time for the last stage to run the classifier once, to sample.
Nanos head_time(const DeviceProfile& device, const ModelPrice& model);
// Time to read a layer range's weights from storage.
Nanos load_time(const DeviceProfile& device, const ModelPrice& model, LayerRange layers);

}  // namespace troupe::sim
