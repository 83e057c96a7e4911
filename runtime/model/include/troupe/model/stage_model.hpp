// What a pipeline stage runs: the layers it holds and, per session, their forward pass with its
// KV cache. The stage actor (actors/src/stage_actor.cpp) knows only this interface: on a device it
// is a Transformer over the mapped weights (transformer_stage); in the simulator, a deterministic
// stand-in for the model that takes the device's simulated time (sim/src/stand_in_model.hpp).
#pragma once

#include <memory>
#include <span>

#include "troupe/model/model.hpp"
#include "troupe/model/thread_pool.hpp"

namespace troupe {

class StageModel {
 public:
  // One session's state on the stage: its KV cache and scratch. x holds count rows of the
  // model's dim floats, for positions pos, pos+1, ...
  class Session {
   public:
    virtual ~Session() = default;
    virtual int context() const = 0;
    virtual LayerRange layers() const = 0;
    virtual int dim() const = 0;         // floats a row
    virtual int vocab_size() const = 0;  // floats of a row's logits
    virtual void embed(int token, float* x) = 0;                 // the stage holds layer 0
    // Only the layers of `sub` (within layers()); the session's whole range by default.
    virtual void forward_layers(float* x, int count, int pos, LayerRange sub) = 0;
    void forward_layers(float* x, int count, int pos) { forward_layers(x, count, pos, layers()); }
    virtual float* logits(float* row) = 0;                       // holds the last layer
  };

  // One session's rows in a batch: `count` rows for positions pos.. of `session`, stacked in x
  // after the rows of the entries before it; `sample`: the logits of its last row are wanted.
  struct Rows {
    Session* session;
    int pos;
    int count;
    bool sample;
  };
  // The most rows one forward_rows takes (each entry may sample).
  static constexpr int kMaxRows = 64;

  virtual ~StageModel() = default;
  virtual LayerRange layers() const = 0;
  // The rows of several sessions through their whole range, as one batch; then the logits of
  // the last row of each entry that samples, vocab_size floats each, one after another in
  // `logits` in the entries' order. The real one reads each weight once for the whole batch;
  // every row's floats are those of running its session alone. This one runs the sessions one
  // after another.
  virtual void forward_rows(float* x, std::span<const Rows> rows, float* logits) const;
  // A session of `context` positions; throws when the device cannot hold its cache.
  virtual std::unique_ptr<Session> open(int context) const = 0;
  // A session on this stage's layers that holds what `from` (a session of this model kind, on
  // other layers, perhaps of weights since released) held of the layers both have: a stage whose
  // range moves keeps what it computed. Its other layers hold nothing yet.
  virtual std::unique_ptr<Session> carry(const Session& from) const = 0;
};

// The real one: `model`'s loaded layers, run by `pool` (which must outlive it).
std::shared_ptr<const StageModel> transformer_stage(std::shared_ptr<const Model> model, ThreadPool& pool);

}  // namespace troupe
