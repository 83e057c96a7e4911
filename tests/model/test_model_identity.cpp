// A model's identity covers every byte of its file: nodes whose weights differ never form a mesh.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

#include "support/process.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/model_identity.hpp"

using namespace troupe;
using troupe::test::read_all;
using troupe::test::shared_dir;
using troupe::test::TempDir;
using troupe::test::write_all;

namespace {

// A temporary cache: the tests never read or write the user's.
struct CacheHome {
  TempDir dir;
  std::string previous;
  bool had = false;
  CacheHome() {
    if (const char* v = std::getenv("XDG_CACHE_HOME")) {
      had = true;
      previous = v;
    }
    ::setenv("XDG_CACHE_HOME", dir.path.c_str(), 1);
  }
  ~CacheHome() {
    if (had) {
      ::setenv("XDG_CACHE_HOME", previous.c_str(), 1);
    } else {
      ::unsetenv("XDG_CACHE_HOME");
    }
  }
  std::size_t entries() const {
    const auto folder = std::filesystem::path(dir.path) / "troupe" / "identity";
    if (!std::filesystem::exists(folder)) return 0;
    return std::distance(std::filesystem::directory_iterator(folder), std::filesystem::directory_iterator());
  }
};

Model stories_at(const std::string& path) {
  Model m = load_model(path);
  return m;
}

}  // namespace

TEST_CASE("a model of the same shape with other weights has another identity", "[model][identity]") {
  CacheHome cache;
  TempDir dir;
  const std::string original = shared_dir() + "/models/stories260K/stories260K.bin";
  std::string bytes = read_all(original);
  write_all(dir / "same.bin", bytes);
  bytes[bytes.size() / 2] ^= 1;  // one bit of one weight
  write_all(dir / "other.bin", bytes);

  const std::string a = model_identity(stories_at(original));
  const std::string same = model_identity(stories_at(dir / "same.bin"));
  const std::string other = model_identity(stories_at(dir / "other.bin"));
  CHECK(a == same);  // the identity is the content's, not the path's
  CHECK(a != other);
  CHECK(a.substr(16) == " (5 layers, dim 64, vocab 512)");
  CHECK(a.substr(0, 16).find_first_not_of("0123456789abcdef") == std::string::npos);
}

TEST_CASE("a file's digest is cached by path, size and time, and found again when the file changes",
          "[model][identity]") {
  CacheHome cache;
  TempDir dir;
  const std::string path = dir / "model.bin";
  std::string bytes = read_all(shared_dir() + "/models/stories260K/stories260K.bin");
  write_all(path, bytes);
  const std::string first = file_digest(path);
  CHECK(first.size() == 64);
  CHECK(cache.entries() == 1);
  CHECK(file_digest(path) == first);  // from the cache
  CHECK(cache.entries() == 1);

  // Other bytes of the same size: a new modification time makes the entry stale.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  bytes[100] ^= 0x40;
  write_all(path, bytes);
  const std::string changed = file_digest(path);
  CHECK(changed != first);
  CHECK(cache.entries() == 1);

  // A corrupt entry is ignored and the digest computed again.
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(cache.dir.path) / "troupe" / "identity")) {
    write_all(e.path().string(), "troupe-identity-v1 garbage");
  }
  CHECK(file_digest(path) == changed);
}

TEST_CASE("an unreadable model file has no digest", "[model][identity][errors]") {
  CacheHome cache;
  TempDir dir;
  CHECK_THROWS_AS(file_digest(dir / "missing.bin"), InputError);
}
