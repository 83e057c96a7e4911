#include "mesh_access.hpp"

#include <algorithm>
#include <optional>

#include "commands.hpp"
#include "troupe/model/error.hpp"
#include "troupe/net/join_token.hpp"

namespace troupe::cli {

void add_mesh_flags(CLI::App* command, MeshFlags& flags, bool with_insecure) {
  command->add_option("--mesh-key", flags.key_file,
                      "The mesh secret's file (default: ~/.config/troupe/mesh.key, created when missing)");
  if (with_insecure) {
    command->add_flag("--insecure", flags.insecure,
                      "No CURVE: connections neither authenticated nor encrypted (every node and "
                      "client of the mesh must say so)");
  }
}

namespace {

void add_unique(std::vector<std::string>& to, const std::string& address) {
  if (std::find(to.begin(), to.end(), address) == to.end()) to.push_back(address);
}

}  // namespace

MeshAccess mesh_access(const MeshFlags& flags, const std::vector<std::string>& values, const std::string& flag) {
  std::optional<net::MeshSecret> token_secret;
  std::vector<std::string> addresses;
  for (const auto& value : values) {
    if (!net::looks_like_token(value)) {
      check_address(value, flag);
      add_unique(addresses, value);
      continue;
    }
    const net::JoinToken token = net::decode_token(value, flag);
    if (token_secret && *token_secret != token.secret) {
      throw InputError(flag + ": the join tokens given are of different meshes");
    }
    token_secret = token.secret;
    for (const auto& a : token.addresses) add_unique(addresses, a);
  }
  if (flags.insecure && (token_secret || !flags.key_file.empty())) {
    throw InputError(std::string("--insecure: ") +
                     (token_secret ? "a join token is for a secure mesh; give HOST:PORT addresses"
                                   : "an --insecure mesh has no key: drop --mesh-key"));
  }
  if (flags.insecure) return {net::MeshSecurity::insecure(), addresses, "--insecure", false, {}};
  if (token_secret && flags.key_file.empty()) {
    return {net::MeshSecurity::from_secret(*token_secret), addresses, "the " + flag + " token", false, {}};
  }
  const bool by_default = flags.key_file.empty();
  const std::string path = by_default ? net::default_key_path() : flags.key_file;
  const net::KeyFile key = net::load_key(path, by_default);
  if (token_secret && *token_secret != key.secret) {
    throw InputError("--mesh-key " + path + " and the " + flag + " token are of different meshes");
  }
  MeshAccess access{net::MeshSecurity::from_secret(key.secret), addresses, "mesh key " + path, key.created, {}};
  if (key.readable_by_others) {
    access.warnings.push_back("mesh key " + path + " can be read by other users of this machine: chmod 600 " + path);
  }
  return access;
}

Connection connect_to_mesh(const MeshAccess& access) {
  if (access.addresses.empty()) {
    throw InputError("--peer: the join token names no member: give --peer HOST:PORT with --mesh-key");
  }
  std::optional<RuntimeFailure> last;
  for (const auto& address : access.addresses) {
    try {
      return {std::make_unique<net::MeshClient>(address, access.security), address};
    } catch (const RuntimeFailure& e) {
      last = e;  // nothing answers there: the next member may
    } catch (const InputError& e) {
      if (!access.key_created) throw;
      throw InputError(std::string(e.what()) + "; this machine's " + access.source +
                       " was only just created: pass a join token (troupe invite on a member) as --peer");
    }
  }
  throw *last;
}

}  // namespace troupe::cli
