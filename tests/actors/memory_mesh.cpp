#include "memory_mesh.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "troupe/model/transformer.hpp"  // kMaxBatch
#include "troupe/text/completion.hpp"
#include "troupe/text/generate.hpp"
#include "troupe/text/gguf_vocabulary.hpp"
#include "troupe/text/sampler.hpp"

namespace troupe::testing {

namespace {

uint64_t mix(uint64_t a, uint64_t b) {  // splitmix64 of a mixed with b
  uint64_t z = a ^ (b * 0xD6E8FEB86659FD93ull) ^ 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A row's value, in its first four floats (16 bits each: exact in f32).
void put(float* row, uint64_t v) {
  for (int i = 0; i < 4; i++) row[i] = float((v >> (16 * i)) & 0xFFFF);
}
uint64_t get(const float* row) {
  uint64_t v = 0;
  for (int i = 0; i < 4; i++) v |= uint64_t(uint32_t(row[i]) & 0xFFFF) << (16 * i);
  return v;
}

constexpr uint64_t kLayerBytes = uint64_t(1) << 20;  // what one layer costs a member's budget

}  // namespace

// --- the model -------------------------------------------------------------------------------------

class TinyStage::Cache final : public StageModel::Session {
 public:
  Cache(const TinyStage& model, int context)
      : model_(model), range_(model.layers_), context_(context), layers_(std::size_t(model.layers_.size())) {}
  int context() const override { return context_; }
  LayerRange layers() const override { return range_; }
  int dim() const override { return model_.config_.dim; }
  int vocab_size() const override { return model_.config_.vocab_size; }
  void take(const Cache& from) {
    const LayerRange both = range_.shared(from.range_);
    for (int l = both.begin; l < both.end; l++) {
      layers_[std::size_t(l - range_.begin)] = from.layers_[std::size_t(l - from.range_.begin)];
    }
  }
  void embed(int token, float* x) override { put(x, mix(uint64_t(uint32_t(token)), 0xE3BED)); }

  void forward_layers(float* x, int count, int pos, LayerRange sub) override {
    if (model_.work_) *model_.work_ += uint64_t(count) * uint64_t(sub.size());
    for (int t = 0; t < count; t++) {
      float* row = x + std::size_t(t) * model_.config_.dim;
      uint64_t v = get(row);
      const std::size_t q = std::size_t(pos + t);
      for (std::size_t l = std::size_t(sub.begin - range_.begin); l < std::size_t(sub.end - range_.begin); l++) {
        // Position q's entry hashes every row up to q, and replaces what q held (a position
        // run again, as a resumed session's, gives what it gave).
        std::vector<uint64_t>& kv = layers_[l];
        const uint64_t before = q == 0 ? 0 : kv.at(q - 1);
        kv.resize(q + 1);
        kv[q] = mix(before, v ^ (uint64_t(q) << 40));
        v = mix(kv[q], uint64_t(range_.begin) + l);
      }
      put(row, v);
    }
  }

  float* logits(float* row) override {
    const int vocab = model_.config_.vocab_size;
    logits_.assign(std::size_t(vocab), -std::numeric_limits<float>::infinity());
    const uint64_t v = get(row);
    for (int k = 0; k < 4; k++) {
      const uint64_t h = mix(v, uint64_t(k));
      logits_[3 + h % uint64_t(vocab - 3)] = float(h >> 54) / 256.0f;  // never <unk>, BOS or EOS
    }
    return logits_.data();
  }

 private:
  const TinyStage& model_;
  LayerRange range_;
  int context_;
  std::vector<std::vector<uint64_t>> layers_;  // per layer, per position: the rows up to it, hashed
  std::vector<float> logits_;
};

std::unique_ptr<StageModel::Session> TinyStage::open(int context) const {
  return std::make_unique<Cache>(*this, context);
}

std::unique_ptr<StageModel::Session> TinyStage::carry(const Session& from) const {
  auto cache = std::make_unique<Cache>(*this, from.context());
  cache->take(dynamic_cast<const Cache&>(from));
  return cache;
}

ModelConfig tiny_config() {
  ModelConfig c;
  c.dim = 8;
  c.hidden_dim = 16;
  c.n_layers = 6;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.vocab_size = 300;
  c.seq_len = 64;
  return c;
}

std::string answer_alone(const wire::GenerateRequest& request, const ModelConfig& config, const Tokenizer& tokenizer) {
  PreparedCompletion p = prepare_completion(request, tokenizer, config.seq_len);
  Generation g(tokenizer, std::move(p.prompt), p.steps, config.seq_len, std::move(p.options));
  const TinyStage whole(config, LayerRange{0, config.n_layers});
  const auto cache = whole.open(g.steps());
  Sampler sampler(config.vocab_size, request.sampling.temperature, request.sampling.topp, request.sampling.seed);
  std::vector<float> x(std::size_t(Transformer::kMaxBatch) * config.dim);
  std::string text = g.prompt_text();
  while (!g.done()) {
    const auto input = g.input();
    const int count = int(input.size());
    float* last = nullptr;
    for (int at = 0; at < count; at += Transformer::kMaxBatch) {
      const int n = std::min(Transformer::kMaxBatch, count - at);
      for (int t = 0; t < n; t++) cache->embed(input[at + t], x.data() + std::size_t(t) * config.dim);
      cache->forward_layers(x.data(), n, g.position() + at);
      last = x.data() + std::size_t(n - 1) * config.dim;
    }
    text += g.accept(sampler.sample(cache->logits(last)));
  }
  return text;
}

// --- the links -------------------------------------------------------------------------------------

void MemoryTransport::send(const std::string& address, Frame frame, Lane) {
  if (!stopped_) mesh_.deliver(address_, address, std::move(frame));
}

void MemoryTransport::reply(const std::string& route, Frame frame) {
  if (!stopped_) mesh_.reply(route, std::move(frame));
}

void MemoryTransport::post(std::function<void()> task) {
  if (!stopped_) mesh_.post(this, std::move(task));
}

Clock::time_point VirtualClock::now() const {
  return time_point(std::chrono::duration_cast<time_point::duration>(scheduler_.clock().current_time - epoch_));
}

TestNode::TestNode(MemoryMesh& mesh, const std::string& address, uint64_t seed)
    : clock(mesh.scheduler(), mesh.epoch()), random(seed), transport(mesh, address) {}

void MemoryMesh::deliver(const std::string& from, const std::string& to, Frame frame) {
  pending_.push_back([this, from, to, frame = std::move(frame)]() mutable {
    for (auto& n : nodes_) {
      if (n->context.address != to) continue;
      if (tap_) {
        wire::Message message = wire::decode(frame);
        tap_(from, to, message);
        frame = wire::encode(message);
      }
      if (!n->transport.stopped() && n->transport.events().frame) {
        n->transport.events().frame(Origin::peer(from), std::move(frame));
      }
      return;
    }
    // A decode step's frames go on both lanes (transport_actor.cpp): kept once, as a receiver
    // takes them once.
    auto& kept = elsewhere_encoded_[to];
    if (std::find(kept.end() - std::min<std::ptrdiff_t>(kept.size(), 2), kept.end(), frame) != kept.end()) return;
    kept.push_back(frame);
    elsewhere_[to].push_back(wire::decode(frame));
  });
}

void MemoryMesh::reply(const std::string& route, Frame frame) { replies_[route].push_back(wire::decode(frame)); }

void MemoryMesh::post(const MemoryTransport* transport, std::function<void()> task) {
  pending_.push_back([transport, task = std::move(task)] {
    if (!transport->stopped()) task();  // as Transport::stop() promises: queued tasks are dropped
  });
}

void MemoryMesh::client_send(int i, const std::string& route, wire::Message message) {
  const auto& events = node(i).transport.events();
  events.frame(Origin::client(route), wire::encode(message));
}

void MemoryMesh::peer_send(int i, const std::string& from, wire::Message message) {
  deliver(from, node(i).context.address, wire::encode(message));
}

// --- the mesh --------------------------------------------------------------------------------------

namespace {

caf::actor_system_config& deterministic(caf::actor_system_config& cfg) {
  cfg.set("scheduler.policy", caf::atom("testing"));
  cfg.set("logger.verbosity", caf::atom("quiet"));
  return cfg;
}

}  // namespace

MemoryMesh::MemoryMesh()
    : config_(tiny_config()), tokenizer_(TokenizerKind::spm, synthetic_vocabulary(config_.vocab_size)) {
  system_ = std::make_unique<caf::actor_system>(deterministic(caf_config_));
  scheduler_ = &dynamic_cast<caf::scheduler::test_coordinator&>(system_->scheduler());
  epoch_ = scheduler_->clock().current_time;
}

MemoryMesh::~MemoryMesh() {
  tap_ = nullptr;  // what it captured may be gone
  for (auto& n : nodes_) n->actors->stop();
  drain();
  nodes_.clear();
  system_.reset();
}

TestNode& MemoryMesh::add_node(int layers, std::vector<std::string> joins, std::optional<LayerRange> initial) {
  const int index = int(nodes_.size());
  char address[32];  // (formatted so: GCC 12 warns falsely of "n" + std::string with -O3)
  std::snprintf(address, sizeof address, "n%d:7000", index);
  auto n = std::make_unique<TestNode>(*this, address, uint64_t(index) + 1);
  actors::NodeContext& c = n->context;
  c.name = "node-" + std::to_string(index);
  c.address = address;
  c.member.name = c.name;
  c.member.address = address;
  c.member.instance = 1;
  c.member.model = "tiny";
  c.member.model_layers = config_.n_layers;
  c.member.mem_budget = uint64_t(layers) * kLayerBytes;
  c.member.throughput = 1;
  c.member.cores = 1;
  c.joins = std::move(joins);
  c.mesh.cost.n_layers = config_.n_layers;
  c.mesh.cost.layer_bytes = kLayerBytes;  // no KV cache, embedding, head or overhead
  c.config = &config_;
  if (initial) c.initial = std::make_shared<TinyStage>(config_, *initial, &layer_positions);
  c.load_layers = [this](LayerRange r) { return std::make_shared<TinyStage>(config_, r, &layer_positions); };
  c.tokenizer = &tokenizer_;
  c.clock = &n->clock;
  c.random = &n->random;
  c.seed = uint64_t(index) + 1;
  c.metrics = &n->metrics;
  c.traffic = [] { return std::array<uint64_t, 4>{}; };
  c.sim_hook = &n->watch;
  actors::NodeActors::Options options;
  options.detached_stage = false;  // every actor on the coordinator's one thread
  n->actors = std::make_unique<actors::NodeActors>(*system_, &n->context, &n->transport, options);
  nodes_.push_back(std::move(n));
  drain();
  return *nodes_.back();
}

void MemoryMesh::drain() {
  while (true) {
    while (!scheduler_->jobs.empty()) scheduler_->run_once();
    if (pending_.empty()) return;
    auto next = std::move(pending_.front());
    pending_.pop_front();
    next();
  }
}

void MemoryMesh::run_for(std::chrono::milliseconds duration) {
  auto& clock = scheduler_->clock();
  const auto end = clock.current_time + duration;
  drain();
  while (!clock.schedule().empty() && clock.schedule().begin()->first <= end) {
    clock.trigger_timeout();
    drain();
  }
  clock.current_time = end;
}

bool MemoryMesh::run_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  for (auto t = std::chrono::milliseconds(0); t < limit; t += std::chrono::milliseconds(10)) {
    if (done()) return true;
    run_for(std::chrono::milliseconds(10));
  }
  return done();
}

}  // namespace troupe::testing
