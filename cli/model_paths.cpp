#include "model_paths.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"

namespace fs = std::filesystem;

namespace troupe::cli {

namespace {
fs::path executable_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

bool is_model_file(const fs::path& p) {
  const auto ext = p.extension();
  return is_file(p) && (ext == ".bin" || ext == ".gguf") && p.filename().string().rfind("tok", 0) != 0;
}
}  // namespace

std::vector<std::string> model_roots() {
  std::vector<std::string> roots;
  if (const char* env = std::getenv("TROUPE_MODELS"); env && *env) roots.emplace_back(env);
  // build/troupe sits one level below the checkout; shared/ sits beside the checkout.
  const fs::path exe = executable_dir();
  if (!exe.empty()) roots.push_back((exe.parent_path().parent_path() / "shared" / "models").string());
  if (const char* home = std::getenv("HOME"); home && *home) {
    roots.push_back((fs::path(home) / ".cache" / "troupe").string());
  }
  return roots;
}

std::string resolve_model(const std::string& name) {
  std::error_code ec;
  auto from_dir = [&](const fs::path& dir) -> std::string {
    std::vector<fs::path> found;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (is_model_file(e.path())) found.push_back(e.path());
    }
    std::sort(found.begin(), found.end());
    // Prefer the llama2.c checkpoint named like the directory (stories260K/stories260K.bin).
    for (const auto& f : found) {
      if (f.stem() == dir.filename()) return f.string();
    }
    return found.empty() ? std::string() : found.front().string();
  };
  if (is_file(name)) return name;
  if (fs::is_directory(name, ec)) {
    if (auto f = from_dir(name); !f.empty()) return f;
  }
  if (!fs::path(name).is_absolute()) {
    for (const auto& root : model_roots()) {
      const fs::path p = fs::path(root) / name;
      if (is_file(p)) return p.string();
      if (fs::is_directory(p, ec)) {
        if (auto f = from_dir(p); !f.empty()) return f;
      }
    }
  }
  std::string where;
  for (const auto& root : model_roots()) where += (where.empty() ? "" : ", ") + root;
  throw InputError(name + ": no such model file (looked in the current directory and " + where +
                   "; give a path, set $TROUPE_MODELS, or write one with `troupe synth`)");
}

std::string find_tokenizer(const std::string& model_path, int vocab_size) {
  const fs::path dir = fs::path(model_path).parent_path();
  const std::vector<fs::path> candidates = {
      dir / "tokenizer.bin", dir / ("tok" + std::to_string(vocab_size) + ".bin"), "tokenizer.bin"};
  for (const auto& c : candidates) {
    if (is_file(c)) return c.string();
  }
  if (vocab_size == 32000) {
    for (const auto& root : model_roots()) {
      const fs::path p = fs::path(root) / "llama2-tokenizer" / "tokenizer.bin";
      if (is_file(p)) return p.string();
    }
  }
  throw InputError(model_path + ": no tokenizer found beside it; name one with -z TOKENIZER");
}

namespace {
bool is_gguf(const std::string& path) {
  char magic[4] = {};
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  const bool ok = std::fread(magic, 1, 4, f) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  std::fclose(f);
  return ok;
}
}  // namespace

Tokenizer load_tokenizer(const std::string& model_path, int vocab_size,
                         const std::string& explicit_path) {
  std::string path = explicit_path;
  if (path.empty()) path = is_gguf(model_path) ? model_path : find_tokenizer(model_path, vocab_size);
  if (!is_gguf(path)) return Tokenizer::load_llama2c(path, vocab_size);
  Tokenizer t = Tokenizer::from_gguf(GgufFile::open(path));
  if (t.vocab_size() != vocab_size) {
    throw InputError(path + ": its vocabulary has " + std::to_string(t.vocab_size()) +
                     " tokens, the model " + std::to_string(vocab_size));
  }
  return t;
}

}  // namespace troupe::cli
