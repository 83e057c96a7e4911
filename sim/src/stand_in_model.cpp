#include "stand_in_model.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <vector>

namespace troupe::sim {

namespace {

uint64_t hash2(uint64_t a, uint64_t b) {  // splitmix64 of a mixed with b
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

constexpr int kCandidates = 4;   // tokens a row's logits give weight to
constexpr int kFirstToken = 3;   // never <unk>, BOS or EOS: answers run to their length

}  // namespace

class StandInModel::Cache final : public StageModel::Session {
 public:
  Cache(const StandInModel& model, int context)
      : model_(model), range_(model.layers_), context_(context), layers_(std::size_t(model.layers_.size())) {}
  int context() const override { return context_; }
  LayerRange layers() const override { return range_; }
  int dim() const override { return model_.model_.config.dim; }
  int vocab_size() const override { return model_.model_.config.vocab_size; }

  // `from`'s entries of the layers both hold (`from`'s model may be gone: only its own fields are read).
  void take(const Cache& from) {
    const LayerRange both = range_.shared(from.range_);
    for (int l = both.begin; l < both.end; l++) {
      layers_[std::size_t(l - range_.begin)] = from.layers_[std::size_t(l - from.range_.begin)];
    }
  }

  void embed(int token, float* x) override { put(x, hash2(uint64_t(uint32_t(token)), 0xE3BED)); }

  void forward_layers(float* x, int count, int pos, LayerRange sub) override {
    run(x, count, pos, sub);
    if (model_.spend_) model_.spend_(stage_time(*model_.device_, model_.model_, sub, count));
  }

  // forward_layers without the device's time (StandInModel::forward_rows charges a batch once).
  void run(float* x, int count, int pos, LayerRange sub) {
    if (!range_.contains(sub)) throw std::logic_error("layers outside the stage's");
    const int dim = model_.model_.config.dim;
    for (int t = 0; t < count; t++) {
      float* row = x + std::size_t(t) * dim;
      uint64_t v = get(row);
      const std::size_t q = std::size_t(pos + t);
      for (std::size_t l = std::size_t(sub.begin - range_.begin); l < std::size_t(sub.end - range_.begin); l++) {
        // Position q's entry depends on every row up to q, as a KV cache's attention does, and
        // replaces what q held: a session taken back to q and run again gives what it gave.
        std::vector<uint64_t>& kv = layers_[l];
        const uint64_t before = q == 0 ? 0 : kv.at(q - 1);
        kv.resize(q + 1);
        kv[q] = hash2(before, v ^ (uint64_t(q) << 40));
        v = hash2(kv[q], uint64_t(range_.begin) + l);
      }
      put(row, v);
    }
  }

  float* logits(float* row) override {
    pick(row);
    if (model_.spend_) model_.spend_(head_time(*model_.device_, model_.model_));
    return logits_.data();
  }

  // logits without the device's time.
  const float* pick(const float* row) {
    const int vocab = model_.model_.config.vocab_size;
    logits_.assign(std::size_t(vocab), -std::numeric_limits<float>::infinity());
    const uint64_t v = get(row);
    for (int k = 0; k < kCandidates; k++) {
      const uint64_t h = hash2(v, uint64_t(k));
      logits_[kFirstToken + h % uint64_t(vocab - kFirstToken)] = float(h >> 54) / 256.0f;
    }
    return logits_.data();
  }

 private:
  const StandInModel& model_;
  LayerRange range_;
  int context_;
  std::vector<std::vector<uint64_t>> layers_;  // per layer, per position: the positions so far, hashed
  std::vector<float> logits_;
};

StandInModel::StandInModel(const ModelPrice& model, LayerRange layers, const DeviceProfile* device,
                           std::function<void(Nanos)> spend)
    : model_(model), layers_(layers), device_(device), spend_(std::move(spend)) {}

std::unique_ptr<StageModel::Session> StandInModel::open(int context) const {
  return std::make_unique<Cache>(*this, context);
}

// A batch costs what a device's pass over its rows costs: the weights streamed once, the
// arithmetic of every row (compute.hpp), and the classifier read once for the rows that sample.
void StandInModel::forward_rows(float* x, std::span<const Rows> rows, float* logits) const {
  int count = 0, sampled = 0;
  for (const Rows& r : rows) {
    auto& cache = static_cast<Cache&>(*r.session);
    cache.run(x, r.count, r.pos, layers_);
    x += std::size_t(r.count) * model_.config.dim;
    count += r.count;
    if (!r.sample) continue;
    logits = std::copy_n(cache.pick(x - model_.config.dim), model_.config.vocab_size, logits);
    sampled++;
  }
  if (!spend_) return;
  spend_(stage_time(*device_, model_, layers_, count));
  if (sampled > 0) spend_(head_time(*device_, model_));
}

std::unique_ptr<StageModel::Session> StandInModel::carry(const Session& from) const {
  auto cache = std::make_unique<Cache>(*this, from.context());
  cache->take(dynamic_cast<const Cache&>(from));
  return cache;
}

}  // namespace troupe::sim
