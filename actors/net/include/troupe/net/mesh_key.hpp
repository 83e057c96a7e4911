// The mesh secret and what is derived from it. A mesh is defined by 32 random bytes that every
// node and client of it holds; from them come, the same on every holder, the CURVE key pair of
// every node's listening socket (server), the CURVE key pair every connecting socket presents
// (client), and the key that authenticates LAN beacons. Only a holder of the secret can complete
// a handshake with a node of the mesh (docs/security.md has the whole model).
//
// Key file: one printable line, "troupe-mesh-key-1 " and the secret as 64 hex digits. Without
// --mesh-key, nodes and clients use $XDG_CONFIG_HOME/troupe/mesh.key (~/.config/troupe/mesh.key),
// created 0600 with a fresh secret when missing, so one user's nodes and clients on one machine
// share a mesh with no flags.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::net {

inline constexpr std::size_t kMeshSecretBytes = 32;
using MeshSecret = std::array<uint8_t, kMeshSecretBytes>;
using Key32 = std::array<uint8_t, 32>;

struct CurveKeyPair {
  Key32 public_key{}, secret_key{};
};

// How every socket of one node or client is secured: CURVE with the mesh's keys, or (--insecure)
// not at all. Secure and insecure sockets never complete a handshake with each other.
class MeshSecurity {
 public:
  static MeshSecurity from_secret(const MeshSecret& secret);
  static MeshSecurity insecure();

  bool is_insecure() const { return insecure_; }
  // The keys (all zero when insecure).
  const CurveKeyPair& server() const { return server_; }
  const CurveKeyPair& client() const { return client_; }
  const Key32& beacon_key() const { return beacon_key_; }
  const MeshSecret& secret() const { return secret_; }
  // 8 hex digits that tell meshes apart in logs without revealing anything of the secret;
  // "insecure" without one.
  const std::string& mesh_id() const { return mesh_id_; }

 private:
  MeshSecurity() = default;
  bool insecure_ = false;
  MeshSecret secret_{};
  CurveKeyPair server_, client_;
  Key32 beacon_key_{};
  std::string mesh_id_;
};

// 32 bytes from the operating system's random source.
MeshSecret generate_secret();

// The key file's line (with its newline) for `secret`.
std::string format_key_file(const MeshSecret& secret);
// The secret in a key file's text; InputError naming `path` when it is not one.
MeshSecret parse_key_file(std::string_view text, const std::string& path);
// A key file as read: its secret, whether this read created it, and whether other users of the
// machine may read it (the caller warns: nothing here logs, clients keep stdout and stderr clean).
struct KeyFile {
  MeshSecret secret{};
  bool created = false;
  bool readable_by_others = false;
};

// Reads a key file; InputError naming `path` when it cannot be read or is not a key file.
KeyFile read_key_file(const std::string& path);
// Writes a new key file, mode 0600, atomically (a reader never sees half of it). Refuses to
// replace an existing file unless `overwrite` (InputError naming `path`).
void write_key_file(const std::string& path, const MeshSecret& secret, bool overwrite);

// $XDG_CONFIG_HOME/troupe/mesh.key, else $HOME/.config/troupe/mesh.key; InputError when neither
// variable is set.
std::string default_key_path();

// The key file at `path`; when `create` and the file does not exist, a fresh secret written there
// first (its folder made 0700), safely against others creating it at the same moment.
KeyFile load_key(const std::string& path, bool create);

}  // namespace troupe::net
