#include "troupe/model/transformer.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "troupe/model/error.hpp"

namespace troupe {

namespace k = troupe::kernels;

namespace {
// Multiply-adds below which a loop runs on the calling thread alone: waking the other threads
// costs microseconds.
constexpr std::size_t kMinParallelWork = 1 << 15;
// Weight bytes a tile of rows may span in a batched product, so it stays in L2 while every
// token of the batch uses it.
constexpr std::size_t kTileBytes = 96 * 1024;
// Batches of at least this many tokens interleave each Q8_0 / Q4_0 tile first where the kernels
// prefer it: the copy costs about what one token's product does. Those tiles are larger: the
// kernel prepares each token's x once per tile.
constexpr int kInterleaveFrom = 4;
constexpr std::size_t kTileBytesInterleaved = 256 * 1024;
// f32 batches go through the batched kernel, which re-reads the tile once per 3 tokens: a tile
// that stays in L1 measured fastest (TinyLlama f32, 2 threads: 48 KiB ~10% ahead of 96 and 256).
constexpr std::size_t kTileBytesF32 = 48 * 1024;

// Rows of a batch's tiles over `rows` rows: whole groups of 16, at most `fit` rows where that
// leaves a group, and as even as that allows (704 rows that fit 224 go as 4 x 176, not
// 3 x 224 + 32: a short tile pays the kernel's per-group costs with little work to spread them).
int even_tile(int rows, std::size_t fit) {
  const int most =
      static_cast<int>(std::max<std::size_t>(1, fit / k::kInterleave)) * k::kInterleave;
  const int tiles = std::max(1, (rows + most - 1) / most);
  const int per = (rows + tiles - 1) / tiles;
  return (per + k::kInterleave - 1) / k::kInterleave * k::kInterleave;
}
}  // namespace

KvCache::KvCache(const ModelConfig& config, LayerRange layers, int context)
    : layers_(layers),
      context_(context),
      kv_dim_(config.kv_dim()),
      kv_heads_(config.n_kv_heads),
      head_size_(config.head_size()) {
  // Checked before allocating: the context may come from a peer's frame, and a cache zero-filled
  // for an absurd one would exhaust memory before any later check saw it.
  if (context < 1 || context > config.seq_len) {
    throw InputError("context " + std::to_string(context) + " is outside 1.." +
                     std::to_string(config.seq_len));
  }
  const int blocks = (context + k::kKeyBlock - 1) / k::kKeyBlock;
  head_floats_ = std::size_t(blocks) * k::kKeyBlock * head_size_;
  keys_.assign(std::size_t(layers.size()) * kv_heads_ * head_floats_, 0.0f);
  values_.assign(std::size_t(layers.size()) * context * kv_dim_, 0.0f);
}

void KvCache::store_key(int layer, int pos, const float* key) {
  for (int h = 0; h < kv_heads_; h++) {
    float* blocks = keys_.data() + head_offset(layer, h);
    for (int i = 0; i < head_size_; i++) {
      blocks[k::key_block_offset(pos, i, head_size_)] = key[h * head_size_ + i];
    }
  }
}

Transformer::Transformer(const Model& model, LayerRange layers, int context, ThreadPool& pool)
    : model_(model), layers_(layers), pool_(pool), cache_(model.config, layers, context) {
  const ModelConfig& c = model.config;
  if (!model.loaded.contains(layers)) {
    throw InputError(model.path + ": layers " + std::to_string(layers.begin) + ":" +
                     std::to_string(layers.end) + " are not loaded in this process");
  }
  const std::size_t batch = kMaxBatch;
  const int widest = std::max(c.dim, c.hidden_dim);
  x_.resize(batch * c.dim);
  xb_.resize(batch * c.dim);
  xb2_.resize(batch * c.dim);
  hb_.resize(batch * c.hidden_dim);
  hb2_.resize(batch * c.hidden_dim);
  q_.resize(batch * c.dim);
  k_.resize(batch * c.kv_dim());
  att_.resize(std::size_t(pool.size()) * (c.n_heads / c.n_kv_heads) * context);
  logits_.resize(c.vocab_size);
  xq_.resize(batch * widest);
  xs_.resize(batch * widest);
  xq8_.resize(batch * ((widest + k::kBlock - 1) / k::kBlock));
  xsum_q8_0_.resize(xq8_.size());
  xsum_q4_0_.resize(xq8_.size());
  tiles_.resize(pool.size());
  wide_tiles_.resize(pool.size());
}

int Transformer::chunks_for(std::size_t work, int items) const {
  // Several chunks a thread, so that a thread held up elsewhere leaves its share to the others.
  return work < kMinParallelWork ? 1 : std::max(1, std::min(items, 4 * pool_.size()));
}

void Transformer::matmul(std::initializer_list<MatvecJob> jobs, const float* x, int x_stride,
                         int n, int count) {
  // Quantized weights multiply quantized inputs; products sharing x share its quantization.
  const bool interleave_tiles = count >= kInterleaveFrom && k::prefers_interleaved_blocks();
  int group_size = 0;
  bool q8_0 = false, q4_0 = false;
  std::size_t work = 0;
  for (const MatvecJob& job : jobs) {
    if (job.w->type == WeightType::q8_groups) group_size = job.w->group_size;
    q8_0 |= job.w->type == WeightType::q8_0;
    q4_0 |= job.w->type == WeightType::q4_0;
    work += std::size_t(job.w->rows) * n * count;
  }
  const int nb = n / k::kBlock;
  for_tokens(count, [&](int t) {
    if (group_size) {
      k::quantize_q8(xq_.data() + std::size_t(t) * n, xs_.data() + std::size_t(t) * (n / group_size),
                     x + std::size_t(t) * x_stride, n, group_size);
    }
    if (q8_0 || q4_0) {
      k::BlockQ8_0* xq = xq8_.data() + std::size_t(t) * nb;
      k::quantize_row_q8_0(xq, x + std::size_t(t) * x_stride, n);
      const std::size_t at = std::size_t(t) * nb;
      if (interleave_tiles && q8_0) k::sum_x_blocks_q8_0x16(xsum_q8_0_.data() + at, xq, nb);
      if (interleave_tiles && q4_0) k::sum_x_blocks_q4_0x16(xsum_q4_0_.data() + at, xq, nb);
    }
  });
  const k::MatvecOps& ops = k::matvec_ops();
  // Batches of f32, Q8_0 and Q4_0 weights: the batched kernels, each output bit-identical to the
  // matvec's (kernels.hpp), reusing each weight load for several tokens.
  const k::MatmulOps& mm = k::matmul_ops();
  // One token streams the weights from memory: each thread its own long run of rows
  // (split_stream). A batch computes on tiles: equal chunks.
  const bool stream = count == 1 && pool_.size() > 1 && work >= kMinParallelWork;
  const int chunks = stream ? pool_.size() * kStreamChunksPerThread : chunks_for(work, 1 << 30);
  pool_.run(chunks, [&](int chunk, int thread) {
    for (const MatvecJob& job : jobs) {
      const Matrix& w = *job.w;
      // Row ranges and tiles start at multiples of 16: whole groups of interleaved blocks.
      const Range r = stream ? split_stream(w.rows, pool_.size(), chunk, k::kInterleave)
                             : split_range(w.rows, chunks, chunk, k::kInterleave);
      const std::size_t row_bytes = std::max<std::size_t>(1, w.bytes() / w.rows);
      const std::size_t tile_bytes = w.type == WeightType::f32   ? kTileBytesF32
                                     : w.type == WeightType::f16 ? kTileBytesF32 / 2  // widened
                                     : interleave_tiles          ? kTileBytesInterleaved
                                                                 : kTileBytes;
      const int tile =
          count == 1 ? r.end - r.begin : even_tile(r.end - r.begin, tile_bytes / row_bytes);
      for (int r0 = r.begin; r0 < r.end; r0 += tile) {
        const int r1 = std::min(r.end, r0 + tile);
        if (count > 1) {
          // Q8_0 / Q4_0: straight from ggml's layout, or from the tile copied interleaved.
          auto blocks = [&](const auto* wb, auto interleaved_bytes, auto interleave, auto matmul_x16,
                            const k::XBlockSum* xsum, auto matmul_ggml) {
            if (!interleave_tiles) {
              matmul_ggml(job.out, job.out_stride, wb, xq8_.data(), nb, n, count, r0, r1);
              return;
            }
            std::vector<uint8_t>& t = tiles_[thread];
            t.resize(std::max(t.size(), interleaved_bytes(r1 - r0, n)));
            interleave(t.data(), wb + std::size_t(r0) * nb, r1 - r0, n);
            matmul_x16(job.out + r0, job.out_stride, t.data(), xq8_.data(), xsum, nb, n, count, 0,
                       r1 - r0);
          };
          switch (w.type) {
            case WeightType::f32:
              mm.f32(job.out, job.out_stride, static_cast<const float*>(w.data), x, x_stride, n,
                     count, r0, r1);
              continue;
            case WeightType::f16: {
              // The tile widened to f32 (exact) through the f32 batched kernel: on every path the
              // f16 matvec is the f32 one on the widened row (kernels), so the floats are its.
              AlignedVector<float>& wide = wide_tiles_[thread];
              const std::size_t floats = std::size_t(r1 - r0) * n;
              wide.resize(std::max(wide.size(), floats));
              const auto* rows = static_cast<const uint16_t*>(w.data) + std::size_t(r0) * n;
              k::dequantize_row_f16(wide.data(), rows, static_cast<int>(floats));
              mm.f32(job.out + r0, job.out_stride, wide.data(), x, x_stride, n, count, 0, r1 - r0);
              continue;
            }
            case WeightType::q8_0:
              blocks(static_cast<const k::BlockQ8_0*>(w.data), k::interleaved_bytes_q8_0,
                     k::interleave_q8_0, mm.q8_0x16, xsum_q8_0_.data(), mm.q8_0);
              continue;
            case WeightType::q4_0:
              blocks(static_cast<const k::BlockQ4_0*>(w.data), k::interleaved_bytes_q4_0,
                     k::interleave_q4_0, mm.q4_0x16, xsum_q4_0_.data(), mm.q4_0);
              continue;
            default:
              break;  // llama2.c's q8 groups: the matvec once per token, below
          }
        }
        for (int t = 0; t < count; t++) {
          float* y = job.out + std::size_t(t) * job.out_stride;
          const float* xt = x + std::size_t(t) * x_stride;
          switch (w.type) {
            case WeightType::f32:
              ops.f32(y, static_cast<const float*>(w.data), xt, n, r0, r1);
              break;
            case WeightType::f16:
              ops.f16(y, static_cast<const uint16_t*>(w.data), xt, n, r0, r1);
              break;
            case WeightType::q8_0:
              ops.q8_0(y, static_cast<const k::BlockQ8_0*>(w.data),
                       xq8_.data() + std::size_t(t) * (n / k::kBlock), n, r0, r1);
              break;
            case WeightType::q4_0:
              ops.q4_0(y, static_cast<const k::BlockQ4_0*>(w.data),
                       xq8_.data() + std::size_t(t) * (n / k::kBlock), n, r0, r1);
              break;
            case WeightType::q8_groups:
              ops.q8(y, static_cast<const int8_t*>(w.data), w.scales,
                     xq_.data() + std::size_t(t) * n,
                     xs_.data() + std::size_t(t) * (n / w.group_size), n, w.group_size, r0, r1);
              break;
          }
        }
      }
    }
  });
}

void Transformer::for_tokens(int count, const std::function<void(int)>& per_token) {
  if (count == 1) {
    per_token(0);
    return;
  }
  const int chunks = std::min(count, 4 * pool_.size());
  pool_.run(chunks, [&](int chunk, int) {
    const Range r = split_range(count, chunks, chunk);
    for (int t = r.begin; t < r.end; t++) per_token(t);
  });
}

void Transformer::embed(int token, float* x) const {
  if (token < 0 || token >= model_.config.vocab_size) {
    throw InputError("token " + std::to_string(token) + " is outside the vocabulary of " +
                     std::to_string(model_.config.vocab_size));
  }
  model_.token_embedding.row(token, x);
}

void Transformer::attention(int layer, int count, int pos) {
  const ModelConfig& c = model_.config;
  const int head_size = c.head_size();
  const int kv_mul = c.n_heads / c.n_kv_heads;  // queries sharing a key head, side by side
  const float scale = sqrtf(static_cast<float>(head_size));
  const int context = cache_.context();
  const int items = count * c.n_kv_heads;
  const std::size_t work = std::size_t(count) * c.n_heads * (pos + count) * head_size * 2;
  const int chunks = chunks_for(work, items);
  pool_.run(chunks, [&](int chunk, int thread) {
    float* att = att_.data() + std::size_t(thread) * kv_mul * context;  // kv_mul rows of scores
    const Range mine = split_range(items, chunks, chunk);
    for (int item = mine.begin; item < mine.end; item++) {
      const int t = item / c.n_kv_heads, h = item % c.n_kv_heads;
      const int p = pos + t;  // this token attends to positions 0..p
      const std::size_t first = std::size_t(t) * c.dim + std::size_t(h) * kv_mul * head_size;
      k::key_scores(att, context, q_.data() + first, head_size, kv_mul, cache_.keys(layer, h), p + 1,
                    head_size, scale);
      k::softmax_rows(att, context, kv_mul, p + 1);
      k::weighted_sums(xb_.data() + first, head_size, att, context, kv_mul,
                       cache_.value(layer, 0) + h * head_size, cache_.stride(), p + 1, head_size);
    }
  });
}

void Transformer::forward_layers(float* x, int count, int pos) {
  const ModelConfig& c = model_.config;
  if (count < 1 || count > kMaxBatch || pos < 0 || pos + count > cache_.context()) {
    throw InputError("positions " + std::to_string(pos) + ".." + std::to_string(pos + count - 1) +
                     " do not fit the context of " + std::to_string(cache_.context()));
  }
  const int dim = c.dim, hidden = c.hidden_dim, kv_dim = c.kv_dim();
  for (int l = layers_.begin; l < layers_.end; l++) {
    const LayerWeights& w = model_.layers[l];
    for_tokens(count, [&](int t) {
      k::rmsnorm(xb_.data() + t * dim, x + t * dim, w.rms_att, dim, c.rms_eps);
    });
    matmul({{q_.data(), dim, &w.wq}, {k_.data(), kv_dim, &w.wk}, {cache_.value(l, pos), kv_dim, &w.wv}},
           xb_.data(), dim, dim, count);
    for_tokens(count, [&](int t) {
      float* key = k_.data() + t * kv_dim;
      k::rope(q_.data() + t * dim, key, dim, kv_dim, c.head_size(), pos + t, c.rope_theta);
      cache_.store_key(l, pos + t, key);
    });
    attention(l, count, pos);
    matmul({{xb2_.data(), dim, &w.wo}}, xb_.data(), dim, dim, count);
    for_tokens(count, [&](int t) {
      float* xt = x + t * dim;
      for (int i = 0; i < dim; i++) xt[i] += xb2_[t * dim + i];
      k::rmsnorm(xb_.data() + t * dim, xt, w.rms_ffn, dim, c.rms_eps);
    });
    matmul({{hb_.data(), hidden, &w.w1}, {hb2_.data(), hidden, &w.w3}}, xb_.data(), dim, dim, count);
    for_tokens(count, [&](int t) {
      k::swiglu(hb_.data() + std::size_t(t) * hidden, hb2_.data() + std::size_t(t) * hidden, hidden);
    });
    matmul({{xb_.data(), dim, &w.w2}}, hb_.data(), hidden, hidden, count);
    for_tokens(count, [&](int t) {
      for (int i = 0; i < dim; i++) x[t * dim + i] += xb_[t * dim + i];
    });
  }
}

float* Transformer::logits(float* x) {
  const ModelConfig& c = model_.config;
  k::rmsnorm(x, x, model_.rms_final, c.dim, c.rms_eps);
  matmul({{logits_.data(), c.vocab_size, &model_.classifier}}, x, c.dim, c.dim, 1);
  return logits_.data();
}

float* Transformer::forward(int token, int pos) {
  embed(token, x_.data());
  forward_layers(x_.data(), 1, pos);
  return logits(x_.data());
}

float* Transformer::forward_batch(std::span<const int> tokens, int pos) {
  const int dim = model_.config.dim;
  int count = 0;
  for (std::size_t at = 0; at < tokens.size(); at += count) {
    count = static_cast<int>(std::min<std::size_t>(kMaxBatch, tokens.size() - at));
    for (int t = 0; t < count; t++) embed(tokens[at + t], x_.data() + std::size_t(t) * dim);
    forward_layers(x_.data(), count, pos + static_cast<int>(at));
  }
  return logits(x_.data() + std::size_t(count - 1) * dim);
}

}  // namespace troupe
