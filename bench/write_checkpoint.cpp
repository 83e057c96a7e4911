// troupe-bench-model: writes a llama2.c legacy (version 0) checkpoint filled with deterministic
// random weights, so speed can be measured on real model shapes without downloading weights.
//
//   troupe-bench-model --shape tinyllama-1.1b --seed 1 --out bench/out/tinyllama-1.1b-f32.bin
//   troupe-bench-model --dim 64 --hidden 172 --layers 2 --heads 4 --kv-heads 2 --vocab 512
//                      --seq-len 128 --out tiny.bin   (one line)
//
// Layout (run.c's checkpoint_init_weights): 7 int32 header (dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size, seq_len; vocab_size > 0 = classifier shared with the embedding), then
// fp32 tensors: token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
// freq_cis_real, freq_cis_imag.
//
// Values: uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)), norms 1.0, freq_cis 0 (readers ignore it).
// That keeps every activation O(1), so the logits are finite. The generator is splitmix64 used
// as a counter-based hash (value i of tensor t = mix(key_t + i*golden)), never <random>'s
// distributions, whose output differs between standard libraries: the same flags give the same
// bytes everywhere.
#include <CLI/CLI.hpp>

#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <future>
#include <string>
#include <vector>

#include <sys/stat.h>

namespace {

struct Shape {
  int dim = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0, seq_len = 0;
};

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

uint64_t mix64(uint64_t z) {  // splitmix64's finalizer
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// One tensor as written: `count` floats, either random with the given fan_in, or the constant `fill`.
struct Tensor {
  const char* name;
  uint64_t count;
  int fan_in;  // 0 = constant
  float fill;
};

// Fills out[0..n) with values first..first+n of tensor `key`. Pure function of (key, index), so
// chunking (and any future parallel split) cannot change the bytes.
void generate(const Tensor& t, uint64_t key, uint64_t first, float* out, size_t n) {
  if (t.fan_in == 0) {
    for (size_t i = 0; i < n; ++i) out[i] = t.fill;
    return;
  }
  // 24 random bits -> an exact float in [-2^23, 2^23), times scale/2^23: uniform in [-scale, scale).
  // sqrt and the multiply are correctly rounded IEEE operations, so this is bit-reproducible.
  const float step = (1.0f / std::sqrt(static_cast<float>(t.fan_in))) / 8388608.0f;
  uint64_t ctr = key + (first + 1) * kGolden;
  for (size_t i = 0; i < n; ++i, ctr += kGolden) {
    const auto bits = static_cast<int32_t>(mix64(ctr) >> 40);
    out[i] = static_cast<float>(bits - 8388608) * step;
  }
}

// The shape from the flags: a preset fills every field a flag did not set, so
// `--shape X --layers 2` is X cut to 2 layers. Empty: the shape is usable, else why not.
std::string complete_shape(const CLI::App& app, const std::string& shape_name, Shape& s) {
  if (!shape_name.empty()) {
    const Shape p = shape_name == "tinyllama-1.1b" ? Shape{2048, 5632, 22, 32, 4, 32000, 2048}
                                                   : Shape{288, 768, 6, 6, 6, 32000, 256};
    for (auto [field, preset, flag] :
         {std::tuple{&s.dim, p.dim, "--dim"}, {&s.hidden, p.hidden, "--hidden"},
          {&s.layers, p.layers, "--layers"}, {&s.heads, p.heads, "--heads"},
          {&s.kv_heads, p.kv_heads, "--kv-heads"}, {&s.vocab, p.vocab, "--vocab"},
          {&s.seq_len, p.seq_len, "--seq-len"}})
      if (app.count(flag) == 0) *field = preset;
  }
  if (!s.dim || !s.hidden || !s.layers || !s.heads || !s.kv_heads || !s.vocab || !s.seq_len)
    return "give --shape, or all of --dim --hidden --layers --heads --kv-heads --vocab --seq-len";
  if (s.dim % s.heads != 0) return "--dim must be a multiple of --heads";
  if (s.heads % s.kv_heads != 0) return "--heads must be a multiple of --kv-heads";
  if ((s.dim / s.heads) % 2 != 0) return "head size (dim/heads) must be even for RoPE";
  return "";
}

// run.c's tensors in file order.
std::vector<Tensor> checkpoint_tensors(const Shape& s) {
  const int head_size = s.dim / s.heads;
  const uint64_t kv_dim = static_cast<uint64_t>(s.dim) * s.kv_heads / s.heads;
  const uint64_t L = s.layers, D = s.dim, H = s.hidden, V = s.vocab;
  const uint64_t freq = static_cast<uint64_t>(s.seq_len) * head_size / 2;
  return {
      {"token_embedding", V * D, s.dim, 0},  // also the classifier: fan_in dim
      {"rms_att", L * D, 0, 1.0f},
      {"wq", L * D * D, s.dim, 0},
      {"wk", L * D * kv_dim, s.dim, 0},
      {"wv", L * D * kv_dim, s.dim, 0},
      {"wo", L * D * D, s.dim, 0},
      {"rms_ffn", L * D, 0, 1.0f},
      {"w1", L * H * D, s.dim, 0},
      {"w2", L * D * H, s.hidden, 0},
      {"w3", L * H * D, s.dim, 0},
      {"rms_final", D, 0, 1.0f},
      {"freq_cis_real", freq, 0, 0.0f},
      {"freq_cis_imag", freq, 0, 0.0f},
  };
}

// Streams the tensors in 4 MiB chunks, double-buffered: the next chunk is generated while the
// previous one is being written, so the run costs about max(generate, write) rather than their
// sum. Returns whether every write succeeded.
bool write_tensors(std::FILE* f, const std::vector<Tensor>& tensors, uint64_t seed) {
  constexpr size_t kChunk = size_t{1} << 20;
  std::vector<float> bufs[2] = {std::vector<float>(kChunk), std::vector<float>(kChunk)};
  std::future<bool> pending;
  int cur = 0;
  bool ok = true;
  for (size_t ti = 0; ti < tensors.size() && ok; ++ti) {
    const Tensor& t = tensors[ti];
    const uint64_t key = mix64(seed ^ mix64((ti + 1) * kGolden));  // independent stream per tensor
    for (uint64_t first = 0; first < t.count && ok; first += kChunk) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, t.count - first));
      generate(t, key, first, bufs[cur].data(), n);
      if (pending.valid()) ok = pending.get();
      const float* data = bufs[cur].data();
      pending = std::async(std::launch::async, [=] { return std::fwrite(data, sizeof(float), n, f) == n; });
      cur ^= 1;
    }
  }
  if (pending.valid()) ok = pending.get() && ok;
  return ok;
}

// Writes to a temporary name and renames at the end: an interrupted run never leaves a truncated
// file under the final name (bench/run.sh only checks that the file exists). Only for regular
// files: renaming over /dev/null or a pipe would replace the device with a plain file.
int write_checkpoint(const std::string& out_path, const Shape& s, const std::vector<Tensor>& tensors,
                     uint64_t seed) {
  struct stat st {};
  const bool special = ::stat(out_path.c_str(), &st) == 0 && !S_ISREG(st.st_mode);
  const std::string tmp_path = special ? out_path : out_path + ".tmp";
  std::FILE* f = std::fopen(tmp_path.c_str(), "wb");
  if (!f) {
    std::perror(tmp_path.c_str());
    return 1;
  }
  const int32_t header[7] = {s.dim, s.hidden, s.layers, s.heads, s.kv_heads, s.vocab, s.seq_len};
  bool ok = std::fwrite(header, sizeof header, 1, f) == 1 && write_tensors(f, tensors, seed);
  ok = std::fclose(f) == 0 && ok;
  if (!ok || (!special && std::rename(tmp_path.c_str(), out_path.c_str()) != 0)) {
    std::perror(out_path.c_str());
    if (!special) std::remove(tmp_path.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Shape s;
  std::string shape_name, out_path;
  uint64_t seed = 1;

  CLI::App app{"Write a llama2.c (version 0) checkpoint with deterministic random weights"};
  app.add_option("--shape", shape_name, "preset shape")->check(CLI::IsMember({"tinyllama-1.1b", "stories15m"}));
  app.add_option("--dim", s.dim, "model width")->check(CLI::Range(1, INT_MAX));
  app.add_option("--hidden", s.hidden, "FFN hidden width")->check(CLI::Range(1, INT_MAX));
  app.add_option("--layers", s.layers, "transformer layers")->check(CLI::Range(1, INT_MAX));
  app.add_option("--heads", s.heads, "query heads")->check(CLI::Range(1, INT_MAX));
  app.add_option("--kv-heads", s.kv_heads, "key/value heads")->check(CLI::Range(1, INT_MAX));
  app.add_option("--vocab", s.vocab, "vocabulary size (classifier shared with the embedding)")
      ->check(CLI::Range(1, INT_MAX));
  app.add_option("--seq-len", s.seq_len, "maximum sequence length")->check(CLI::Range(1, INT_MAX));
  app.add_option("--seed", seed, "random seed (same flags + seed = same bytes)");
  app.add_option("--out", out_path, "output file")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "troupe-bench-model: %s\n", e.what());
    return 2;
  }
  if (const std::string problem = complete_shape(app, shape_name, s); !problem.empty()) {
    std::fprintf(stderr, "troupe-bench-model: %s\n", problem.c_str());
    return 2;
  }
  const std::vector<Tensor> tensors = checkpoint_tensors(s);
  // llama2.c computes tensor offsets in int; refuse shapes it would overflow on.
  for (const auto& t : tensors) {
    if (t.count > INT_MAX) {
      std::fprintf(stderr, "troupe-bench-model: a tensor exceeds 2^31 elements; llama2.c readers would overflow\n");
      return 2;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (const int failed = write_checkpoint(out_path, s, tensors, seed)) return failed;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t bytes = 7 * sizeof(int32_t), params = 0;
  for (std::size_t i = 0; i < tensors.size(); i++) {
    bytes += tensors[i].count * sizeof(float);
    if (i + 2 < tensors.size()) params += tensors[i].count;  // every tensor but the unused freq_cis
  }
  std::printf("wrote %s: %d dim, %d hidden, %d layers, %d/%d heads, vocab %d, seq_len %d; %.1fM params, %.1f MB in %.1f s\n",
              out_path.c_str(), s.dim, s.hidden, s.layers, s.heads, s.kv_heads, s.vocab, s.seq_len,
              static_cast<double>(params) / 1e6, static_cast<double>(bytes) / 1e6, secs);
  return 0;
}
