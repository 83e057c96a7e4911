#include "troupe/model/model_identity.hpp"

#include <cstdio>
#include <cstring>

#include "troupe/model/gguf.hpp"
#include "troupe/model/mapped_file.hpp"

namespace troupe {

std::string model_identity(const Model& model) {
  // The bytes before the weights: a GGUF's header, metadata and tensor table; a llama2.c
  // checkpoint's header (its tensor table is implied by the header), with the file's size.
  const MappedFile file(model.path);
  const auto bytes = file.bytes();
  std::size_t head = std::min<std::size_t>(bytes.size(), 28);
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0) {
    const GgufFile gguf = GgufFile::open(model.path);
    head = bytes.size();
    for (const auto& t : gguf.tensors()) {
      if (t.data) head = std::min<std::size_t>(head, std::size_t(t.data - gguf.file().bytes().data()));
    }
  }
  uint64_t h = 1469598103934665603ULL;  // FNV-1a 64
  auto mix = [&](unsigned char c) { h = (h ^ c) * 1099511628211ULL; };
  for (std::size_t i = 0; i < head; i++) mix(static_cast<unsigned char>(bytes[i]));
  for (int i = 0; i < 8; i++) mix(static_cast<unsigned char>(uint64_t(bytes.size()) >> (8 * i)));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  const ModelConfig& c = model.config;
  return std::string(hex) + " (" + std::to_string(c.n_layers) + " layers, dim " +
         std::to_string(c.dim) + ", vocab " + std::to_string(c.vocab_size) + ")";
}

}  // namespace troupe
