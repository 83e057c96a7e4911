// How a command reaches a mesh: its security (the secret of --mesh-key FILE, of a join token, or
// of the default key file; or none with --insecure) and the addresses its --join / --peer values
// name (a join token names several). Shared by `troupe node`, the clients and `troupe invite`.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "troupe/net/client.hpp"
#include "troupe/net/mesh_key.hpp"

namespace troupe::cli {

struct MeshFlags {
  std::string key_file;   // --mesh-key FILE
  bool insecure = false;  // --insecure
};

// --mesh-key, and --insecure unless `with_insecure` is false (troupe invite: no secret, no token).
void add_mesh_flags(CLI::App* command, MeshFlags& flags, bool with_insecure = true);

struct MeshAccess {
  net::MeshSecurity security;
  std::vector<std::string> addresses;  // HOST:PORT each, tokens expanded, in order, no repeats
  std::string source;                  // where the secret came from, for logs and errors
  bool key_created = false;            // the default key file did not exist and was made now
  std::vector<std::string> warnings;   // for the caller to print (a key file others may read)
};

// The security and addresses of `values` (each HOST:PORT or a join token) given to `flag`.
// InputError (exit 2) for a malformed token or address, tokens of different meshes, a token
// with --insecure or with the key file of another mesh, or a key file that cannot be read.
MeshAccess mesh_access(const MeshFlags& flags, const std::vector<std::string>& values, const std::string& flag);

// A client connection to the first of `access.addresses` that answers. InputError when a node
// refuses the handshake (another mesh), RuntimeFailure when none answers.
struct Connection {
  std::unique_ptr<net::MeshClient> client;
  std::string peer;  // the address it is connected to
};
Connection connect_to_mesh(const MeshAccess& access);

}  // namespace troupe::cli
