#include "support/checkpoint_writer.hpp"

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "troupe/kernels/kernels.hpp"

namespace troupe::test {

namespace {

void put(std::ofstream& f, const void* p, std::size_t n) {
  f.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
}

std::vector<float> floats_of(const Matrix& m) {
  std::vector<float> out(std::size_t(m.rows) * m.cols);
  for (int r = 0; r < m.rows; r++) m.row(r, out.data() + std::size_t(r) * m.cols);
  return out;
}

void write_header(std::ofstream& f, const Model& m, int version, int group_size) {
  const ModelConfig& c = m.config;
  const uint32_t magic = 0x616b3432;
  const int32_t fields[] = {version,          c.dim,        c.hidden_dim, c.n_layers, c.n_heads,
                            c.n_kv_heads,     c.vocab_size, c.seq_len};
  put(f, &magic, 4);
  put(f, fields, sizeof fields);
  const uint8_t shared = m.shared_classifier ? 1 : 0;
  put(f, &shared, 1);
  std::size_t at = 37;
  if (version == 2) {
    put(f, &group_size, 4);
    at += 4;
  }
  std::vector<char> pad(256 - at, 0);
  put(f, pad.data(), pad.size());
}

void write_norms(std::ofstream& f, const Model& m) {
  const std::size_t dim = m.config.dim;
  for (const auto& l : m.layers) put(f, l.rms_att, dim * 4);
  for (const auto& l : m.layers) put(f, l.rms_ffn, dim * 4);
  put(f, m.rms_final, dim * 4);
}

template <typename Write>
void for_each_matrix(const Model& m, Write write) {
  write(m.token_embedding);
  for (const auto& l : m.layers) write(l.wq);
  for (const auto& l : m.layers) write(l.wk);
  for (const auto& l : m.layers) write(l.wv);
  for (const auto& l : m.layers) write(l.wo);
  for (const auto& l : m.layers) write(l.w1);
  for (const auto& l : m.layers) write(l.w2);
  for (const auto& l : m.layers) write(l.w3);
  if (!m.shared_classifier) write(m.classifier);
}

}  // namespace

void write_v1(const Model& model, const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  write_header(f, model, 1, 0);
  write_norms(f, model);
  for_each_matrix(model, [&](const Matrix& w) {
    const auto v = floats_of(w);
    put(f, v.data(), v.size() * 4);
  });
  if (!f) throw std::runtime_error("cannot write " + path);
}

void write_v2(const Model& model, const std::string& path, int group_size) {
  std::ofstream f(path, std::ios::binary);
  write_header(f, model, 2, group_size);
  write_norms(f, model);
  for_each_matrix(model, [&](const Matrix& w) {
    const auto v = floats_of(w);
    std::vector<int8_t> q(v.size());
    std::vector<float> s(v.size() / group_size);
    kernels::quantize_q8(q.data(), s.data(), v.data(), static_cast<int>(v.size()), group_size);
    put(f, q.data(), q.size());
    put(f, s.data(), s.size() * 4);
  });
  if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace troupe::test
