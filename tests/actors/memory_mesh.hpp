// Nodes of troupe's real actors (actors::NodeActors) in one actor system on CAF's deterministic
// test coordinator, over in-memory links: frames are delivered whole, in the order sent, with no
// latency; time moves only when a test says so (the coordinator's virtual clock, which the nodes'
// clocks read). A small model stands in for the weights. What the simulator does with faults,
// latencies and devices is left out: these tests look at the actors themselves.
#pragma once

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "troupe/actors/node_actors.hpp"
#include "troupe/actors/node_context.hpp"
#include "troupe/discovery/mesh.hpp"
#include "troupe/text/tokenizer.hpp"

namespace troupe::testing {

// A model for the tests: each layer keeps, for each position, a hash of the rows up to it (its KV
// cache) and a row carries a value from layer to layer in its first floats; the logits of a row
// favour a few tokens drawn from its value. An answer depends on every earlier token and on every
// layer seeing every position in order, but not on how the layers are split into stages. `work`
// (when given) counts the layers run times the positions they ran.
class TinyStage final : public StageModel {
 public:
  TinyStage(const ModelConfig& config, LayerRange layers, uint64_t* work = nullptr)
      : config_(config), layers_(layers), work_(work) {}
  LayerRange layers() const override { return layers_; }
  std::unique_ptr<Session> open(int context) const override;
  std::unique_ptr<Session> carry(const Session& from) const override;

 private:
  class Cache;
  const ModelConfig& config_;
  LayerRange layers_;
  uint64_t* work_;
};

// The model's shape: 6 layers, a vocabulary of 300 (synthetic_vocabulary's), 64 positions.
ModelConfig tiny_config();

// What one machine holding every layer answers: run.c's loop over TinyStage.
std::string answer_alone(const wire::GenerateRequest& request, const ModelConfig& config, const Tokenizer& tokenizer);

// The observing half of the simulator's hook: the node actor's mesh after every event.
class MeshWatch final : public discovery::SimHook {
 public:
  void observe(const discovery::Mesh& mesh) override {
    last = &mesh;
    events++;
  }
  const discovery::Mesh* last = nullptr;  // the node actor's own, while it lives
  int events = 0;
};

class MemoryMesh;

class MemoryTransport final : public Transport {
 public:
  MemoryTransport(MemoryMesh& mesh, std::string address) : mesh_(mesh), address_(std::move(address)) {}
  void start(Events events) override { events_ = std::move(events); }
  void send(const std::string& address, Frame frame, Lane lane) override;
  void reply(const std::string& route, Frame frame) override;
  void post(std::function<void()> task) override;
  void stop() override { stopped_ = true; }
  bool stopped() const { return stopped_; }
  const Events& events() const { return events_; }

 private:
  MemoryMesh& mesh_;
  std::string address_;
  Events events_;
  bool stopped_ = false;
};

// Every node's clock: the coordinator's virtual time since the mesh began.
class VirtualClock final : public Clock {
 public:
  VirtualClock(caf::scheduler::test_coordinator& scheduler, caf::actor_clock::time_point epoch)
      : scheduler_(scheduler), epoch_(epoch) {}
  time_point now() const override;

 private:
  caf::scheduler::test_coordinator& scheduler_;
  caf::actor_clock::time_point epoch_;
};

struct TestNode {
  TestNode(MemoryMesh& mesh, const std::string& address, uint64_t seed);
  actors::NodeMetrics metrics;
  VirtualClock clock;
  SeededRandom random;
  MemoryTransport transport;
  MeshWatch watch;
  actors::NodeContext context;
  std::unique_ptr<actors::NodeActors> actors;
  const discovery::Mesh& mesh() const { return *watch.last; }
};

class MemoryMesh {
 public:
  MemoryMesh();
  ~MemoryMesh();  // stops every node and lets the actors run their exits

  // A node at "nN:7000" holding up to `layers` of the model's layers (its memory budget),
  // joining through `joins`. `initial`: layers it holds from the start.
  TestNode& add_node(int layers, std::vector<std::string> joins, std::optional<LayerRange> initial = std::nullopt);
  TestNode& node(int i) { return *nodes_[std::size_t(i)]; }
  std::size_t size() const { return nodes_.size(); }

  // Runs the actors, the transports' tasks and the frames in flight until nothing is left to do
  // now, then moves time on by `duration`, firing every timer on the way.
  void run_for(std::chrono::milliseconds duration);
  // run_for in steps of 10 ms until `done` holds, for `limit` at most; whether it came to hold.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit);

  // A client's frame to node `i` on `route`; the node's replies to that route collect in replies().
  void client_send(int i, const std::string& route, wire::Message message);
  // A frame to node `i` that claims to come from the peer at `from` (a member may claim any
  // address: docs/security.md), delivered after the frames already on their way.
  void peer_send(int i, const std::string& from, wire::Message message);
  const std::vector<wire::Message>& replies(const std::string& route) { return replies_[route]; }
  // Sees, and may change, every frame between nodes as it is delivered: (from, to, message).
  using Tap = std::function<void(const std::string&, const std::string&, wire::Message&)>;
  void tap(Tap tap) { tap_ = std::move(tap); }
  // Frames sent to addresses no node listens at (decoded), by address.
  const std::vector<wire::Message>& sent_to(const std::string& address) { return elsewhere_[address]; }

  caf::scheduler::test_coordinator& scheduler() { return *scheduler_; }
  caf::actor_clock::time_point epoch() const { return epoch_; }
  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  // Layers run times the positions they ran, over every node's stage (TinyStage's `work`).
  uint64_t layer_positions = 0;

  // --- for MemoryTransport ---
  void deliver(const std::string& from, const std::string& to, Frame frame);
  void reply(const std::string& route, Frame frame);
  void post(const MemoryTransport* transport, std::function<void()> task);

 private:
  void drain();

  ModelConfig config_;
  Tokenizer tokenizer_;
  caf::actor_system_config caf_config_;
  std::unique_ptr<caf::actor_system> system_;
  caf::scheduler::test_coordinator* scheduler_ = nullptr;
  caf::actor_clock::time_point epoch_;
  std::vector<std::unique_ptr<TestNode>> nodes_;
  std::deque<std::function<void()>> pending_;  // tasks and frames, in the order posted
  std::map<std::string, std::vector<wire::Message>> replies_, elsewhere_;
  std::map<std::string, std::vector<Frame>> elsewhere_encoded_;
  Tap tap_;
};

}  // namespace troupe::testing
