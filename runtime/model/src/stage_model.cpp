#include "troupe/model/stage_model.hpp"

#include "troupe/model/transformer.hpp"

namespace troupe {

namespace {

class TransformerSession final : public StageModel::Session {
 public:
  TransformerSession(const Model& model, int context, ThreadPool& pool)
      : transformer_(model, model.loaded, context, pool) {}
  int context() const override { return transformer_.context(); }
  LayerRange layers() const override { return transformer_.layers(); }
  void embed(int token, float* x) override { transformer_.embed(token, x); }
  void forward_layers(float* x, int count, int pos, LayerRange sub) override {
    transformer_.forward_layers(x, count, pos, sub);
  }
  float* logits(float* row) override { return transformer_.logits(row); }
  // Keys and values only: the weights `from` ran on may be gone.
  void take_cache(const TransformerSession& from) { transformer_.cache().copy_layers(from.transformer_.cache()); }

 private:
  Transformer transformer_;
};

class TransformerStage final : public StageModel {
 public:
  TransformerStage(std::shared_ptr<const Model> model, ThreadPool& pool) : model_(std::move(model)), pool_(pool) {}
  LayerRange layers() const override { return model_->loaded; }
  std::unique_ptr<Session> open(int context) const override {
    return std::make_unique<TransformerSession>(*model_, context, pool_);
  }
  std::unique_ptr<Session> carry(const Session& from) const override {
    auto session = std::make_unique<TransformerSession>(*model_, from.context(), pool_);
    session->take_cache(dynamic_cast<const TransformerSession&>(from));
    return session;
  }

 private:
  std::shared_ptr<const Model> model_;
  ThreadPool& pool_;
};

}  // namespace

std::shared_ptr<const StageModel> transformer_stage(std::shared_ptr<const Model> model, ThreadPool& pool) {
  return std::make_shared<TransformerStage>(std::move(model), pool);
}

}  // namespace troupe
