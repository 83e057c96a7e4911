// The simulator's stand-in for a model: what a stage runs (troupe::StageModel), deterministic and
// cheap, with the shape's vocabulary and the device's simulated time.
//
// Each layer keeps, for each position, a hash of the rows of every position up to it (its "KV
// cache": a position run again replaces its entry, as a resumed session's is), and each row
// carries a 64-bit value from layer to layer (in its first floats, as exact integers, so the
// activations' f32 frames carry it unchanged). The logits of a row give a few tokens weights
// drawn from its value, and the real Sampler picks one. A token thus depends on every earlier
// token, on every layer having seen every position in order, and on the sampler's state — as a
// real model's does — but not on how the layers are split into stages: a session answers with
// the same text on any route, and with another one when a KV cache lost, doubled or misplaced a
// position on the way.
#pragma once

#include <functional>

#include "troupe/model/stage_model.hpp"
#include "troupe/sim/compute.hpp"

namespace troupe::sim {

class StandInModel final : public StageModel {
 public:
  // `spend` charges the device for work (none: free, as for the reference answer).
  StandInModel(const ModelPrice& model, LayerRange layers, const DeviceProfile* device,
               std::function<void(Nanos)> spend);
  LayerRange layers() const override { return layers_; }
  std::unique_ptr<Session> open(int context) const override;
  std::unique_ptr<Session> carry(const Session& from) const override;
  void forward_rows(float* x, std::span<const Rows> rows, float* logits) const override;

 private:
  class Cache;
  const ModelPrice& model_;
  LayerRange layers_;
  const DeviceProfile* device_;
  std::function<void(Nanos)> spend_;
};

}  // namespace troupe::sim
