#include "troupe/net/mesh_key.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "troupe/model/error.hpp"

namespace troupe::net {

namespace {

constexpr std::string_view kKeyFileTag = "troupe-mesh-key-1 ";
// crypto_kdf's context: eight bytes naming what the sub-keys are for.
constexpr char kKdfContext[crypto_kdf_CONTEXTBYTES + 1] = "troupe-m";
enum SubkeyId : uint64_t { kServerSeed = 1, kClientSeed = 2, kBeaconKey = 3, kMeshId = 4 };

void init_sodium() {
  if (sodium_init() < 0) throw RuntimeFailure("libsodium cannot initialise (no random source?)");
}

Key32 derive(const MeshSecret& secret, SubkeyId id) {
  Key32 out{};
  crypto_kdf_derive_from_key(out.data(), out.size(), id, kKdfContext, secret.data());
  return out;
}

CurveKeyPair key_pair(const Key32& seed) {
  CurveKeyPair p;
  crypto_box_seed_keypair(p.public_key.data(), p.secret_key.data(), seed.data());
  return p;
}

std::string hex(const uint8_t* bytes, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; i++) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 15];
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

MeshSecurity MeshSecurity::from_secret(const MeshSecret& secret) {
  init_sodium();
  MeshSecurity s;
  s.secret_ = secret;
  s.server_ = key_pair(derive(secret, kServerSeed));
  s.client_ = key_pair(derive(secret, kClientSeed));
  s.beacon_key_ = derive(secret, kBeaconKey);
  const Key32 id = derive(secret, kMeshId);
  s.mesh_id_ = hex(id.data(), 4);
  return s;
}

MeshSecurity MeshSecurity::insecure() {
  MeshSecurity s;
  s.insecure_ = true;
  s.mesh_id_ = "insecure";
  return s;
}

MeshSecret generate_secret() {
  init_sodium();
  MeshSecret s;
  randombytes_buf(s.data(), s.size());
  return s;
}

std::string format_key_file(const MeshSecret& secret) {
  return std::string(kKeyFileTag) + hex(secret.data(), secret.size()) + "\n";
}

MeshSecret parse_key_file(std::string_view text, const std::string& path) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  const std::string expected = "expected one line '" + std::string(kKeyFileTag) +
                               "<64 hex digits>', as troupe keygen writes";
  if (text.substr(0, kKeyFileTag.size()) != kKeyFileTag) {
    throw InputError("mesh key " + path + ": not a troupe mesh key file (" + expected + ")");
  }
  text.remove_prefix(kKeyFileTag.size());
  MeshSecret secret{};
  bool ok = text.size() == 2 * secret.size();
  for (std::size_t i = 0; ok && i < secret.size(); i++) {
    const int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    ok = hi >= 0 && lo >= 0;
    secret[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  if (!ok) throw InputError("mesh key " + path + ": malformed (" + expected + ")");
  return secret;
}

KeyFile read_key_file(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError("mesh key " + path + ": cannot read it: " + errno_text());
  struct stat st {};
  char buffer[512];
  ssize_t n = -1;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < ssize_t(sizeof buffer)) {
    n = read(fd, buffer, sizeof buffer);
  }
  close(fd);
  if (n < 0) throw InputError("mesh key " + path + ": not a troupe mesh key file (not a small regular file)");
  KeyFile key;
  key.secret = parse_key_file(std::string_view(buffer, std::size_t(n)), path);
  key.readable_by_others = (st.st_mode & (S_IRWXG | S_IRWXO)) != 0;
  return key;
}

void write_key_file(const std::string& path, const MeshSecret& secret, bool overwrite) {
  // Written whole to a private temporary file beside it, then linked (or renamed) into place:
  // no reader sees half a key, and of two processes creating it at once only one wins.
  std::string temporary = path + ".tmp-XXXXXX";
  const int fd = mkostemp(temporary.data(), O_CLOEXEC);  // mode 0600, a name no one else has
  if (fd < 0) throw InputError("mesh key " + path + ": cannot write there: " + errno_text());
  const std::string line = format_key_file(secret);
  const bool written = write(fd, line.data(), line.size()) == ssize_t(line.size()) && fsync(fd) == 0;
  close(fd);
  int placed = -1;
  std::string why = "cannot write there";
  if (written) placed = overwrite ? rename(temporary.c_str(), path.c_str()) : link(temporary.c_str(), path.c_str());
  if (placed != 0 && errno == EEXIST) why = "the file exists (troupe keygen --force replaces it)";
  if (placed != 0) why += std::string(": ") + errno_text();
  unlink(temporary.c_str());
  if (placed != 0) throw InputError("mesh key " + path + ": " + why);
}

std::string default_key_path() {
  const char* config = std::getenv("XDG_CONFIG_HOME");
  if (config && *config == '/') return std::string(config) + "/troupe/mesh.key";
  const char* home = std::getenv("HOME");
  if (!home || !*home) {
    throw InputError("no --mesh-key, and no HOME to find ~/.config/troupe/mesh.key in: give --mesh-key FILE");
  }
  return std::string(home) + "/.config/troupe/mesh.key";
}

KeyFile load_key(const std::string& path, bool create) {
  bool created = false;
  if (create && access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
    std::error_code error;
    const auto folder = std::filesystem::path(path).parent_path();
    if (!folder.empty() && !std::filesystem::exists(folder, error)) {
      std::filesystem::create_directories(folder, error);
      chmod(folder.c_str(), 0700);
    }
    try {
      write_key_file(path, generate_secret(), false);
      created = true;
    } catch (const InputError&) {
      if (access(path.c_str(), F_OK) != 0) throw;  // not another process that was first
    }
  }
  KeyFile key = read_key_file(path);
  key.created = created;
  return key;
}

}  // namespace troupe::net
