#include "troupe/model/model_identity.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "troupe/model/error.hpp"

namespace troupe {

namespace {

constexpr std::size_t kPiece = std::size_t(64) << 20;
constexpr std::size_t kChunk = std::size_t(1) << 20;  // read at a time
constexpr const char* kCacheTag = "troupe-identity-v1";

using Digest = std::array<unsigned char, crypto_generichash_BYTES>;

std::string hex(const unsigned char* bytes, std::size_t n) {
  static const char* const kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (std::size_t i = 0; i < n; i++) {
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 15];
  }
  return out;
}

// One piece's digest, read with pread in chunks: the file's pages stay in the page cache instead
// of this process's resident memory, which a memory budget counts (a mapping of the whole file
// would count all of it while it is hashed).
bool hash_piece(int fd, std::size_t begin, std::size_t end, std::vector<unsigned char>& buffer, Digest& out) {
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, out.size());
  for (std::size_t at = begin; at < end;) {
    const ssize_t n = ::pread(fd, buffer.data(), std::min(buffer.size(), end - at), off_t(at));
    if (n <= 0) return false;
    crypto_generichash_update(&state, buffer.data(), std::size_t(n));
    at += std::size_t(n);
  }
  crypto_generichash_final(&state, out.data(), out.size());
  return true;
}

// The pieces hashed on every core, then their digests hashed in order with the file's size.
std::string compute_digest(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    if (fd >= 0) ::close(fd);
    throw InputError(path + ": cannot read the file");
  }
  const uint64_t size = uint64_t(st.st_size);
  const std::size_t pieces = std::max<std::size_t>(1, (size + kPiece - 1) / kPiece);
  std::vector<Digest> digests(pieces);
  const unsigned threads = std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), pieces));
  std::atomic<bool> failed{false};
  auto hash_pieces = [&](unsigned first) {
    std::vector<unsigned char> buffer(kChunk);
    for (std::size_t p = first; p < pieces; p += threads) {
      const std::size_t begin = std::min<std::size_t>(size, p * kPiece);
      const std::size_t end = std::min<std::size_t>(size, begin + kPiece);
      if (!hash_piece(fd, begin, end, buffer, digests[p])) failed = true;
    }
  };
  std::vector<std::thread> workers;
  for (unsigned t = 1; t < threads; t++) workers.emplace_back(hash_pieces, t);
  hash_pieces(0);
  for (auto& w : workers) w.join();
  ::close(fd);
  if (failed) throw InputError(path + ": cannot read the file");
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, crypto_generichash_BYTES);
  crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(&size), sizeof size);
  for (const Digest& d : digests) crypto_generichash_update(&state, d.data(), d.size());
  Digest whole;
  crypto_generichash_final(&state, whole.data(), whole.size());
  return hex(whole.data(), whole.size());
}

std::filesystem::path cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    return std::filesystem::path(xdg) / "troupe" / "identity";
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    return std::filesystem::path(home) / ".cache" / "troupe" / "identity";
  }
  return {};
}

// The cache entry's name: a digest of the file's absolute path.
std::filesystem::path cache_entry(const std::string& path) {
  const std::filesystem::path dir = cache_dir();
  if (dir.empty()) return {};
  std::error_code error;
  const std::string absolute = std::filesystem::absolute(path, error).string();
  unsigned char key[16];
  crypto_generichash(key, sizeof key, reinterpret_cast<const unsigned char*>(absolute.data()),
                     absolute.size(), nullptr, 0);
  return dir / hex(key, sizeof key);
}

// "size mtime_ns": what makes a cached digest stale.
std::string file_stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw InputError(path + ": cannot read the file");
  const int64_t ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return std::to_string(uint64_t(st.st_size)) + " " + std::to_string(ns);
}

std::string cached_digest(const std::filesystem::path& entry, const std::string& stamp) {
  std::ifstream in(entry);
  std::string tag, size, mtime, digest;
  if (!(in >> tag >> size >> mtime >> digest) || tag != kCacheTag || size + " " + mtime != stamp ||
      digest.size() != 2 * crypto_generichash_BYTES) {
    return "";
  }
  return digest;
}

// Written to a temporary name and renamed, so a reader never sees half an entry.
void store_digest(const std::filesystem::path& entry, const std::string& stamp, const std::string& digest) {
  std::error_code error;
  std::filesystem::create_directories(entry.parent_path(), error);
  if (error) return;
  const std::string temporary = entry.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(temporary);
    out << kCacheTag << " " << stamp << " " << digest << "\n";
    if (!out) return;
  }
  std::filesystem::rename(temporary, entry, error);
  if (error) std::filesystem::remove(temporary, error);
}

}  // namespace

std::string file_digest(const std::string& path) {
  if (sodium_init() < 0) throw RuntimeFailure("libsodium cannot start");
  const std::string stamp = file_stamp(path);
  const std::filesystem::path entry = cache_entry(path);
  if (!entry.empty()) {
    if (std::string digest = cached_digest(entry, stamp); !digest.empty()) return digest;
  }
  const std::string digest = compute_digest(path);
  if (!entry.empty()) store_digest(entry, stamp, digest);
  return digest;
}

std::string model_identity(const Model& model) {
  const ModelConfig& c = model.config;
  return file_digest(model.path).substr(0, 16) + " (" + std::to_string(c.n_layers) + " layers, dim " +
         std::to_string(c.dim) + ", vocab " + std::to_string(c.vocab_size) + ")";
}

}  // namespace troupe
