#include "troupe/model/layer_pass.hpp"

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
// Batches of at least this many tokens interleave each tile of a type with an interleaved layout
// (Q8_0, Q4_0) first where the kernels prefer it: the copy costs about what one token's product
// does. Those tiles are larger: the kernel prepares each token's x once per tile.
constexpr int kInterleaveFrom = 4;
constexpr std::size_t kTileBytesInterleaved = 256 * 1024;
// f32 batches go through the batched kernel, which re-reads the tile once per 3 tokens: a tile
// that stays in L1 measured fastest (TinyLlama f32, 2 threads: 48 KiB ~10% ahead of 96 and 256).
constexpr std::size_t kTileBytesF32 = 48 * 1024;

// Weight bytes of a batch's tiles of `type`: types whose products take f32 input run the f32
// kernel (f16's tiles widened to f32 first), so theirs hold kTileBytesF32 as floats.
std::size_t tile_bytes(WeightType type, bool interleave) {
  const k::TypeTraits& t = k::type_traits(type);
  if (t.input == WeightType::f32) return kTileBytesF32 * t.block_bytes / (t.block * sizeof(float));
  return interleave ? kTileBytesInterleaved : kTileBytes;
}

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

LayerPass::LayerPass(const Model& model, LayerRange layers, ThreadPool& pool)
    : model_(model), layers_(layers), pool_(pool) {
  const ModelConfig& c = model.config;
  if (!model.loaded.contains(layers)) {
    throw InputError(model.path + ": layers " + std::to_string(layers.begin) + ":" +
                     std::to_string(layers.end) + " are not loaded in this process");
  }
  const std::size_t batch = kMaxBatch;
  const int widest = std::max(c.dim, c.hidden_dim);
  xb_.resize(batch * c.dim);
  xb2_.resize(batch * c.dim);
  hb_.resize(batch * c.hidden_dim);
  hb2_.resize(batch * c.hidden_dim);
  q_.resize(batch * c.dim);
  k_.resize(batch * c.kv_dim());
  v_.resize(batch * c.kv_dim());
  for (int i = 0; i < k::kWeightTypes; i++) {
    const k::TypeTraits& t = k::type_traits(WeightType(i));
    const k::TypeTraits& form = k::type_traits(t.input);
    const std::size_t blocks = (widest + form.block - 1) / form.block;  // a token's, at most
    if (t.input != WeightType::f32) forms_[int(t.input)].resize(batch * blocks * form.block_bytes);
    if (form.scales_apart) form_scales_[int(t.input)].resize(batch * widest);  // groups of 1 at most
    if (t.interleaved) sums_[i].resize(batch * blocks);
  }
  tiles_.resize(pool.size());
  wide_tiles_.resize(pool.size());
}

std::size_t LayerPass::scratch_bytes(const ModelConfig& c, int context, int threads) {
  const std::size_t batch = kMaxBatch, widest = std::max(c.dim, c.hidden_dim);
  // The constructor's rows (xb, xb2, q, k, v, hb, hb2), attention scores, logits.
  std::size_t floats = batch * (3 * std::size_t(c.dim) + 2 * std::size_t(c.hidden_dim) + 2 * c.kv_dim());
  floats += std::size_t(threads) * (c.n_heads / c.n_kv_heads) * context + std::size_t(kMaxLogitRows) * c.vocab_size;
  // A batch's inputs in a quantized form, their scales and block sums: under a float an element each.
  floats += 3 * batch * widest;
  // Each thread's tile: an interleaved copy, or a tile of f16 widened to floats (twice its bytes).
  const std::size_t tile = std::max(kTileBytesInterleaved, 2 * kTileBytesF32);
  return floats * sizeof(float) + std::size_t(threads) * tile;
}

int LayerPass::chunks_for(std::size_t work, int items) const {
  // Several chunks a thread, so that a thread held up elsewhere leaves its share to the others.
  return work < kMinParallelWork ? 1 : std::max(1, std::min(items, 4 * pool_.size()));
}

void LayerPass::matmul(std::initializer_list<MatvecJob> jobs, const float* x, int x_stride,
                         int n, int count) {
  const Batch b{x, x_stride, n, count,
                count >= kInterleaveFrom && k::isa_kernels().interleaves_batches};
  prepare_inputs(jobs, b);
  std::size_t work = 0;
  for (const MatvecJob& job : jobs) work += std::size_t(job.w->rows) * n * count;
  // One token streams the weights from memory: each thread its own long run of rows
  // (split_stream). A batch computes on tiles: equal chunks.
  const bool stream = count == 1 && pool_.size() > 1 && work >= kMinParallelWork;
  const int chunks = stream ? pool_.size() * kStreamChunksPerThread : chunks_for(work, 1 << 30);
  pool_.run(chunks, [&](int chunk, int thread) {
    for (const MatvecJob& job : jobs) {
      // Row ranges and tiles start at multiples of 16: whole groups of interleaved blocks.
      const Range r = stream ? split_stream(job.w->rows, pool_.size(), chunk, k::kInterleave)
                             : split_range(job.w->rows, chunks, chunk, k::kInterleave);
      multiply(job, b, r.begin, r.end, thread);
    }
  });
}

void LayerPass::prepare_inputs(std::initializer_list<MatvecJob> jobs, const Batch& b) {
  // Products sharing x share its conversion into a form (and its sums).
  std::array<bool, k::kWeightTypes> form{}, sums{};
  std::array<int, k::kWeightTypes> group{};  // the forms' group size, where scales lie apart
  for (const MatvecJob& job : jobs) {
    const k::TypeTraits& t = k::type_traits(job.w->type);
    form[int(t.input)] = t.input != WeightType::f32;  // f32 input: x as it is
    group[int(t.input)] = job.w->group_size;
    sums[int(job.w->type)] = b.interleave && t.interleaved;
  }
  for_tokens(b.count, [&](int t) {
    const float* xt = b.x + std::size_t(t) * b.x_stride;
    for (int f = 0; f < k::kWeightTypes; f++) {
      if (!form[f]) continue;
      const k::TypeTraits& ft = k::type_traits(WeightType(f));
      float* scales = ft.scales_apart ? form_scales_[f].data() + std::size_t(t) * (b.n / group[f])
                                      : nullptr;
      k::quantize_row(WeightType(f), {forms_[f].data() + t * ft.bytes_of(b.n), scales, group[f]},
                      xt, b.n);
    }
    for (int i = 0; i < k::kWeightTypes; i++) {
      if (!sums[i]) continue;
      const k::TypeTraits& ft = k::type_traits(k::type_traits(WeightType(i)).input);
      const int blocks = b.n / ft.block;
      k::sum_x_blocks(WeightType(i), sums_[i].data() + std::size_t(t) * blocks,
                      forms_[int(k::type_traits(WeightType(i)).input)].data() + t * ft.bytes_of(b.n),
                      blocks);
    }
  });
}

k::Operand LayerPass::input(const Matrix& w, const Batch& b, int t) const {
  const WeightType form = k::type_traits(w.type).input;
  if (form == WeightType::f32) return b.x + std::size_t(t) * b.x_stride;
  const k::TypeTraits& ft = k::type_traits(form);
  const uint8_t* data = forms_[int(form)].data() + t * ft.bytes_of(b.n);
  if (!ft.scales_apart) return data;
  return {data, form_scales_[int(form)].data() + std::size_t(t) * (b.n / w.group_size), w.group_size};
}

int LayerPass::input_stride(const Matrix& w, const Batch& b) const {
  const WeightType form = k::type_traits(w.type).input;
  return form == WeightType::f32 ? b.x_stride : b.n / k::type_traits(form).block;
}

void LayerPass::multiply(const MatvecJob& job, const Batch& b, int r0, int r1, int thread) {
  const Matrix& w = *job.w;
  if (b.count == 1) {
    k::isa_kernels()[w.type].matvec(job.out, w.rows_from(0), input(w, b, 0), b.n, r0, r1);
    return;
  }
  const std::size_t row_bytes = std::max<std::size_t>(1, w.bytes() / w.rows);
  const int tile = even_tile(r1 - r0, tile_bytes(w.type, b.interleave) / row_bytes);
  for (int t0 = r0; t0 < r1; t0 += tile) multiply_tile(job, b, t0, std::min(r1, t0 + tile), thread);
}

void LayerPass::multiply_tile(const MatvecJob& job, const Batch& b, int r0, int r1, int thread) {
  const Matrix& w = *job.w;
  const k::TypeTraits& traits = k::type_traits(w.type);
  const k::TypeKernels& kernels = k::isa_kernels()[w.type];
  const int ldx = input_stride(w, b);
  if (b.interleave && traits.interleaved) {
    // The tile copied into the interleaved layout for the kernels that prefer it.
    std::vector<uint8_t>& tile = tiles_[thread];
    tile.resize(std::max(tile.size(), k::interleaved_bytes(w.type, r1 - r0, b.n)));
    k::interleave(w.type, tile.data(), w.rows_from(r0).data, r1 - r0, b.n);
    kernels.matmul_interleaved(job.out + r0, job.out_stride, tile.data(), input(w, b, 0),
                               sums_[int(w.type)].data(), ldx, b.n, b.count, 0, r1 - r0);
  } else if (kernels.matmul) {
    // The batched kernel, each output bit-identical to the matvec's (kernels.hpp), reusing each
    // weight load for several tokens.
    kernels.matmul(job.out, job.out_stride, w.rows_from(0), input(w, b, 0), ldx, b.n, b.count, r0,
                   r1);
  } else if (traits.batch_widened) {
    // The tile widened to f32 (exact) through the f32 batched kernel: on every path the type's
    // matvec is the f32 one on the widened row (kernels), so the floats are its.
    AlignedVector<float>& wide = wide_tiles_[thread];
    const std::size_t floats = std::size_t(r1 - r0) * b.n;
    wide.resize(std::max(wide.size(), floats));
    kernels.dequantize_row(wide.data(), w.rows_from(r0), static_cast<int>(floats));
    k::isa_kernels()[WeightType::f32].matmul(job.out + r0, job.out_stride, wide.data(), b.x,
                                             b.x_stride, b.n, b.count, 0, r1 - r0);
  } else {
    // No batched kernel (llama2.c's groups): the matvec once per token.
    for (int t = 0; t < b.count; t++) {
      kernels.matvec(job.out + std::size_t(t) * job.out_stride, w.rows_from(0), input(w, b, t), b.n,
                     r0, r1);
    }
  }
}

void LayerPass::for_tokens(int count, const std::function<void(int)>& per_token) {
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

void LayerPass::embed(int token, float* x) const {
  if (token < 0 || token >= model_.config.vocab_size) {
    throw InputError("token " + std::to_string(token) + " is outside the vocabulary of " +
                     std::to_string(model_.config.vocab_size));
  }
  model_.token_embedding.row(token, x);
}

int LayerPass::place_rows(std::span<const CacheRows> rows, LayerRange sub) {
  int count = 0, context = 0;
  for (const CacheRows& r : rows) {
    if (!r.cache->layers().contains(sub)) throw InputError("a KV cache of other layers than those run");
    if (r.count < 1 || r.pos < 0 || r.pos + r.count > r.cache->context() || count + r.count > kMaxBatch) {
      throw InputError("positions " + std::to_string(r.pos) + ".." + std::to_string(r.pos + r.count - 1) +
                       " do not fit the context of " + std::to_string(r.cache->context()));
    }
    for (int t = 0; t < r.count; t++, count++) {
      row_cache_[count] = r.cache;
      row_pos_[count] = r.pos + t;
    }
    context = std::max(context, r.cache->context());
  }
  if (context > att_context_) {
    const ModelConfig& c = model_.config;
    att_context_ = context;
    att_.resize(std::size_t(pool_.size()) * (c.n_heads / c.n_kv_heads) * context);
  }
  return count;
}

// Each row's key (rotated) and value into its session's cache, at its position.
void LayerPass::store_keys_values(int layer, int count) {
  const ModelConfig& c = model_.config;
  const int dim = c.dim, kv_dim = c.kv_dim();
  for_tokens(count, [&](int t) {
    float* key = k_.data() + t * kv_dim;
    k::rope(q_.data() + t * dim, key, dim, kv_dim, c.head_size(), row_pos_[t], c.rope_theta);
    row_cache_[t]->store_key(layer, row_pos_[t], key);
    std::copy_n(v_.data() + std::size_t(t) * kv_dim, kv_dim, row_cache_[t]->value(layer, row_pos_[t]));
  });
}

void LayerPass::attention(int layer, int count) {
  const ModelConfig& c = model_.config;
  const int head_size = c.head_size();
  const int kv_mul = c.n_heads / c.n_kv_heads;  // queries sharing a key head, side by side
  const float scale = sqrtf(static_cast<float>(head_size));
  const int items = count * c.n_kv_heads;
  std::size_t work = 0;
  for (int t = 0; t < count; t++) work += std::size_t(c.n_heads) * (row_pos_[t] + 1) * head_size * 2;
  const int chunks = chunks_for(work, items);
  pool_.run(chunks, [&](int chunk, int thread) {
    float* att = att_.data() + std::size_t(thread) * kv_mul * att_context_;  // kv_mul rows of scores
    const Range mine = split_range(items, chunks, chunk);
    for (int item = mine.begin; item < mine.end; item++) {
      const int t = item / c.n_kv_heads, h = item % c.n_kv_heads;
      const int p = row_pos_[t];  // this row attends to its session's positions 0..p
      KvCache& cache = *row_cache_[t];
      const std::size_t first = std::size_t(t) * c.dim + std::size_t(h) * kv_mul * head_size;
      k::key_scores(att, att_context_, q_.data() + first, head_size, kv_mul, cache.keys(layer, h), p + 1,
                    head_size, scale);
      k::softmax_rows(att, att_context_, kv_mul, p + 1);
      k::weighted_sums(xb_.data() + first, head_size, att, att_context_, kv_mul,
                       cache.value(layer, 0) + h * head_size, cache.stride(), p + 1, head_size);
    }
  });
}

void LayerPass::forward_layers(float* x, std::span<const CacheRows> rows, LayerRange sub) {
  const ModelConfig& c = model_.config;
  if (!layers_.contains(sub)) throw InputError("layers " + std::to_string(sub.begin) + ".." + std::to_string(sub.end) + " are not this stage's");
  const int count = place_rows(rows, sub);
  const int dim = c.dim, hidden = c.hidden_dim, kv_dim = c.kv_dim();
  for (int l = sub.begin; l < sub.end; l++) {
    const LayerWeights& w = model_.layers[l];
    for_tokens(count, [&](int t) {
      k::rmsnorm(xb_.data() + t * dim, x + t * dim, w.rms_att, dim, c.rms_eps);
    });
    matmul({{q_.data(), dim, &w.wq}, {k_.data(), kv_dim, &w.wk}, {v_.data(), kv_dim, &w.wv}},
           xb_.data(), dim, dim, count);
    store_keys_values(l, count);
    attention(l, count);
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

float* LayerPass::logits(float* x, int count) {
  const ModelConfig& c = model_.config;
  if (count < 1 || count > kMaxLogitRows) throw InputError("logits of " + std::to_string(count) + " rows at once");
  logits_.resize(std::max(logits_.size(), std::size_t(count) * c.vocab_size));
  for_tokens(count, [&](int t) { k::rmsnorm(x + t * c.dim, x + t * c.dim, model_.rms_final, c.dim, c.rms_eps); });
  matmul({{logits_.data(), c.vocab_size, &model_.classifier}}, x, c.dim, c.dim, count);
  return logits_.data();
}

}  // namespace troupe
