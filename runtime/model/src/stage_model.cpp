#include "troupe/model/stage_model.hpp"

#include <algorithm>

#include "troupe/model/error.hpp"
#include "troupe/model/kv_cache.hpp"
#include "troupe/model/layer_pass.hpp"

namespace troupe {

static_assert(StageModel::kMaxRows == LayerPass::kMaxBatch);

void StageModel::forward_rows(float* x, std::span<const Rows> rows, float* logits) const {
  for (const Rows& r : rows) {
    const int dim = r.session->dim();
    r.session->forward_layers(x, r.count, r.pos);
    x += std::size_t(r.count) * dim;
    if (!r.sample) continue;
    const float* l = r.session->logits(x - dim);
    logits = std::copy_n(l, r.session->vocab_size(), logits);
  }
}

namespace {

// A session of the real stage: its KV cache, run by the stage's pass. The pass belongs to the
// stage: a session carried to new layers only hands its cache over (the old stage may be gone).
class TransformerSession final : public StageModel::Session {
 public:
  TransformerSession(LayerPass& pass, int context)
      : pass_(pass), cache_(pass.config(), pass.layers(), context) {}
  int context() const override { return cache_.context(); }
  LayerRange layers() const override { return cache_.layers(); }
  int dim() const override { return pass_.config().dim; }
  int vocab_size() const override { return pass_.config().vocab_size; }
  void embed(int token, float* x) override { pass_.embed(token, x); }
  void forward_layers(float* x, int count, int pos, LayerRange sub) override {
    const CacheRows rows{&cache_, pos, count};
    pass_.forward_layers(x, {&rows, 1}, sub);
  }
  float* logits(float* row) override { return pass_.logits(row, 1); }
  KvCache& cache() { return cache_; }
  const KvCache& cache() const { return cache_; }

 private:
  LayerPass& pass_;
  KvCache cache_;
};

class TransformerStage final : public StageModel {
 public:
  TransformerStage(std::shared_ptr<const Model> model, ThreadPool& pool)
      : model_(std::move(model)), pass_(*model_, model_->loaded, pool) {}
  LayerRange layers() const override { return model_->loaded; }
  std::unique_ptr<Session> open(int context) const override {
    return std::make_unique<TransformerSession>(pass_, context);
  }
  std::unique_ptr<Session> carry(const Session& from) const override {
    auto session = std::make_unique<TransformerSession>(pass_, from.context());
    session->cache().copy_layers(dynamic_cast<const TransformerSession&>(from).cache());
    return session;
  }
  void forward_rows(float* x, std::span<const Rows> rows, float* logits) const override;

 private:
  std::shared_ptr<const Model> model_;
  // Scratch for the batch being run: the stage runs one batch at a time (its actor's).
  mutable LayerPass pass_;
  mutable std::vector<float> last_rows_;  // the sampled entries' last rows, side by side
};

void TransformerStage::forward_rows(float* x, std::span<const Rows> rows, float* logits) const {
  if (rows.size() > std::size_t(kMaxRows)) throw InputError("a batch of too many sessions");
  std::vector<CacheRows> caches;
  caches.reserve(rows.size());
  for (const Rows& r : rows) caches.push_back({&static_cast<TransformerSession*>(r.session)->cache(), r.pos, r.count});
  pass_.forward_layers(x, caches, pass_.layers());
  const int dim = pass_.config().dim, vocab = pass_.config().vocab_size;
  last_rows_.clear();
  for (const Rows& r : rows) {
    x += std::size_t(r.count) * dim;
    if (r.sample) last_rows_.insert(last_rows_.end(), x - dim, x);
  }
  const int sampled = static_cast<int>(last_rows_.size()) / dim;
  for (int at = 0; at < sampled; at += LayerPass::kMaxLogitRows) {
    const int n = std::min(LayerPass::kMaxLogitRows, sampled - at);
    const float* out = pass_.logits(last_rows_.data() + std::size_t(at) * dim, n);
    std::copy_n(out, std::size_t(n) * vocab, logits + std::size_t(at) * vocab);
  }
}

}  // namespace

std::shared_ptr<const StageModel> transformer_stage(std::shared_ptr<const Model> model, ThreadPool& pool) {
  return std::make_shared<TransformerStage>(std::move(model), pool);
}

}  // namespace troupe
