#include "troupe/runtime/transformer.hpp"

#include <cmath>
#include <cstring>

#include "troupe/kernels/kernels.hpp"

namespace troupe {

namespace k = troupe::kernels;

namespace {
// Multiply-adds below which a loop runs on the calling thread alone.
constexpr std::size_t kMinParallelWork = 1 << 15;
}  // namespace

void Transformer::run_parts(int parts, const std::function<void(int)>& task) {
  if (parts == 1) {
    task(0);
  } else {
    pool_.run(task);
  }
}

KvCache::KvCache(const ModelConfig& config, LayerRange layers, int context)
    : layers_(layers), context_(context), kv_dim_(config.kv_dim()) {
  const std::size_t n = std::size_t(layers.size()) * context * kv_dim_;
  keys_.assign(n, 0.0f);
  values_.assign(n, 0.0f);
}

Transformer::Transformer(const Model& model, LayerRange layers, int context, ThreadPool& pool)
    : model_(model), layers_(layers), pool_(pool), cache_(model.config, layers, context) {
  const ModelConfig& c = model.config;
  x_.resize(c.dim);
  xb_.resize(c.dim);
  xb2_.resize(c.dim);
  hb_.resize(c.hidden_dim);
  hb2_.resize(c.hidden_dim);
  q_.resize(c.dim);
  att_.resize(std::size_t(c.n_heads) * context);
  logits_.resize(c.vocab_size);
  const int widest = std::max(c.dim, c.hidden_dim);
  xq_.resize(widest);
  xs_.resize(widest);
}

void Transformer::matvec(std::initializer_list<MatvecJob> jobs, const float* x, int n) {
  const Matrix& first = *jobs.begin()->w;
  if (first.type == WeightType::q8) {
    // runq.c quantizes the input once per product; products sharing x share its quantization.
    k::quantize_q8(xq_.data(), xs_.data(), x, n, first.group_size);
  }
  const k::MatvecOps& ops = k::matvec_ops();
  std::size_t work = 0;
  for (const MatvecJob& job : jobs) work += std::size_t(job.w->rows) * n;
  // Waking the other threads costs a few microseconds: not worth it for a small product.
  const int parts = work < kMinParallelWork ? 1 : pool_.size();
  run_parts(parts, [&](int part) {
    for (const MatvecJob& job : jobs) {
      const Matrix& w = *job.w;
      const Range r = split_range(w.rows, parts, part, 8);
      if (r.begin >= r.end) continue;
      if (w.type == WeightType::f32) {
        ops.f32(job.out, w.f32, x, n, r.begin, r.end);
      } else {
        ops.q8(job.out, w.q, w.scales, xq_.data(), xs_.data(), n, w.group_size, r.begin, r.end);
      }
    }
  });
}

void Transformer::embed(int token, float* x) const { model_.token_embedding.row(token, x); }

void Transformer::attention(int layer, int pos) {
  const ModelConfig& c = model_.config;
  const int head_size = c.head_size();
  const int kv_mul = c.n_heads / c.n_kv_heads;
  const float scale = sqrtf(static_cast<float>(head_size));
  const int context = cache_.context();
  const std::size_t work = std::size_t(c.n_heads) * (pos + 1) * head_size * 2;
  const int parts = work < kMinParallelWork ? 1 : pool_.size();
  run_parts(parts, [&](int part) {
    const Range heads = split_range(c.n_heads, parts, part);
    for (int h = heads.begin; h < heads.end; h++) {
      const float* q = q_.data() + h * head_size;
      float* att = att_.data() + std::size_t(h) * context;
      const int kv_off = (h / kv_mul) * head_size;
      for (int t = 0; t <= pos; t++) {
        float score = k::dot(q, cache_.key(layer, t) + kv_off, head_size);
        att[t] = score / scale;
      }
      k::softmax(att, pos + 1);
      float* xb = xb_.data() + h * head_size;
      std::memset(xb, 0, head_size * sizeof(float));
      for (int t = 0; t <= pos; t++) k::axpy(xb, att[t], cache_.value(layer, t) + kv_off, head_size);
    }
  });
}

void Transformer::forward_layers(float* x, int pos) {
  const ModelConfig& c = model_.config;
  const int dim = c.dim, hidden = c.hidden_dim;
  for (int l = layers_.begin; l < layers_.end; l++) {
    const LayerWeights& w = model_.layers[l];
    float* key = cache_.key(l, pos);
    float* value = cache_.value(l, pos);
    k::rmsnorm(xb_.data(), x, w.rms_att, dim, c.rms_eps);
    matvec({{q_.data(), &w.wq}, {key, &w.wk}, {value, &w.wv}}, xb_.data(), dim);
    k::rope(q_.data(), key, dim, c.kv_dim(), c.head_size(), pos, c.rope_theta);
    attention(l, pos);
    matvec({{xb2_.data(), &w.wo}}, xb_.data(), dim);
    for (int i = 0; i < dim; i++) x[i] += xb2_[i];
    k::rmsnorm(xb_.data(), x, w.rms_ffn, dim, c.rms_eps);
    matvec({{hb_.data(), &w.w1}, {hb2_.data(), &w.w3}}, xb_.data(), dim);
    k::swiglu(hb_.data(), hb2_.data(), hidden);
    matvec({{xb_.data(), &w.w2}}, hb_.data(), hidden);
    for (int i = 0; i < dim; i++) x[i] += xb_[i];
  }
}

float* Transformer::logits(float* x) {
  const ModelConfig& c = model_.config;
  k::rmsnorm(x, x, model_.rms_final, c.dim, c.rms_eps);
  matvec({{logits_.data(), &model_.classifier}}, x, c.dim);
  return logits_.data();
}

float* Transformer::forward(int token, int pos) {
  embed(token, x_.data());
  forward_layers(x_.data(), pos);
  return logits(x_.data());
}

}  // namespace troupe
