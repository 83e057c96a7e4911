#include "troupe/sim/compute.hpp"

#include <algorithm>
#include <map>
#include <optional>

#include "troupe/model/error.hpp"
#include "troupe/model/model_shapes.hpp"
#include "troupe/model/weight_types.hpp"

namespace troupe::sim {

namespace {

constexpr double GB = 1e9;
constexpr uint64_t MiB = uint64_t(1) << 20;
constexpr uint64_t GiB = uint64_t(1) << 30;

const std::map<std::string, DeviceProfile>& profiles() {
  // name, memory, memory bandwidth, cores, FLOP/s per core, storage read speed
  static const std::map<std::string, DeviceProfile> p = {
      {"milkv-duo", {"milkv-duo", 64 * MiB, 0.5 * GB, 1, 0.5e9, 20e6}},
      {"rpi4", {"rpi4", 4 * GiB, 4 * GB, 4, 6e9, 80e6}},
      {"rpi5", {"rpi5", 8 * GiB, 10 * GB, 4, 15e9, 300e6}},
      {"jetson-nano", {"jetson-nano", 4 * GiB, 20 * GB, 4, 8e9, 80e6}},
      {"laptop", {"laptop", 16 * GiB, 40 * GB, 8, 50e9, 2e9}},
      {"desktop", {"desktop", 32 * GiB, 60 * GB, 16, 80e9, 3e9}},
  };
  return p;
}

// A block's bytes over its values (q8_0: 32 int8 and an f16 scale, 34 / 32); 0 for a name that is
// not a weight type's.
double bytes_per_weight(const std::string& type) {
  const std::optional<WeightType> t = find_weight_type(type);
  if (!t) return 0;
  const kernels::TypeTraits& traits = kernels::type_traits(*t);
  return double(traits.block_bytes) / traits.block;
}

Nanos seconds(double s) { return Nanos(static_cast<int64_t>(s * 1e9)); }

}  // namespace

uint64_t DeviceProfile::mem_budget() const { return memory - std::min(memory / 4, GiB); }

const DeviceProfile& device_profile(const std::string& name, const std::string& key) {
  auto it = profiles().find(name);
  if (it == profiles().end()) {
    std::string known;
    for (const auto& n : device_profile_names()) known += (known.empty() ? "" : ", ") + n;
    throw InputError(key + ": unknown device profile '" + name + "' (profiles: " + known + ")");
  }
  return it->second;
}

std::vector<std::string> device_profile_names() {
  std::vector<std::string> out;
  for (const auto& [name, p] : profiles()) out.push_back(name);
  return out;
}

ModelPrice price_model(const ModelSpec& spec, const std::string& key) {
  auto it = model_shapes().find(spec.shape);
  if (it == model_shapes().end()) {
    std::string known;
    for (const auto& [n, s] : model_shapes()) known += (known.empty() ? "" : ", ") + n;
    throw InputError(key + ".shape: unknown model shape '" + spec.shape + "' (shapes: " + known + ")");
  }
  const double bpw = bytes_per_weight(spec.type);
  if (bpw == 0) {
    throw InputError(key + ".type: unknown weight type '" + spec.type + "' (" +
                     list_names(named_weight_types(), ", ") + ")");
  }
  const ModelShape& s = it->second;
  ModelPrice p;
  p.config.dim = s.dim;
  p.config.hidden_dim = s.hidden;
  p.config.n_layers = s.layers;
  p.config.n_heads = s.heads;
  p.config.n_kv_heads = s.kv_heads;
  p.config.vocab_size = s.vocab;
  p.config.seq_len = s.seq_len;
  const uint64_t dim = s.dim, kv = p.config.kv_dim(), hidden = s.hidden, vocab = s.vocab;
  p.layer_params = 2 * dim * dim + 2 * dim * kv + 3 * dim * hidden;
  p.layer_bytes = static_cast<uint64_t>(double(p.layer_params) * bpw) + 2 * dim * 4;  // + norms
  p.embedding_bytes = static_cast<uint64_t>(double(vocab * dim) * bpw);
  // The classifier reads vocab x dim weights whether or not it shares them with the embedding.
  p.head_bytes = p.embedding_bytes + dim * 4;
  // As actors/src/node.cpp: the head priced as the embedding, KV cache for one session.
  p.cost = discovery::model_cost(p.config, p.layer_bytes, p.embedding_bytes, p.embedding_bytes, 1);
  return p;
}

Nanos stage_time(const DeviceProfile& d, const ModelPrice& m, LayerRange layers, int positions) {
  const double n = layers.size();
  const double stream = n * double(m.layer_bytes) / d.mem_bandwidth;
  const double flops = 2.0 * n * double(m.layer_params) * positions;
  const double arithmetic = flops / (d.cores * d.flops_per_core);
  return seconds(std::max(stream, arithmetic));
}

Nanos head_time(const DeviceProfile& d, const ModelPrice& m) { return seconds(double(m.head_bytes) / d.mem_bandwidth); }

Nanos load_time(const DeviceProfile& d, const ModelPrice& m, LayerRange layers) {
  double bytes = double(layers.size()) * double(m.layer_bytes);
  if (layers.begin == 0) bytes += double(m.embedding_bytes);
  if (layers.end == m.config.n_layers) bytes += double(m.head_bytes);
  return seconds(bytes / d.storage_bandwidth);
}

}  // namespace troupe::sim
