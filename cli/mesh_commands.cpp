// `troupe keygen` (a new mesh secret in a key file) and `troupe invite` (a join token: the
// secret and the addresses of members, asked of a running node), see docs/security.md.
#include <cstdio>
#include <memory>

#include "commands.hpp"
#include "mesh_access.hpp"
#include "mesh_status.hpp"
#include "troupe/model/error.hpp"
#include "troupe/net/addresses.hpp"
#include "troupe/net/join_token.hpp"

namespace troupe::cli {

namespace {

struct KeygenFlags {
  std::string out;
  bool force = false;
};

int run_keygen(const KeygenFlags& f) {
  const net::MeshSecret secret = net::generate_secret();
  net::write_key_file(f.out, secret, f.force);
  std::fprintf(stderr, "troupe: wrote a new mesh secret to %s (mesh %s); give it to every node and client "
                       "of the mesh with --mesh-key, or hand out troupe invite's tokens\n",
               f.out.c_str(), net::MeshSecurity::from_secret(secret).mesh_id().c_str());
  return 0;
}

struct InviteFlags {
  std::string peer;
  MeshFlags mesh;
};

// The addresses of the members the node behind `c` knows alive: the ones other machines can
// dial first, at most a token's worth.
std::vector<std::string> member_addresses(const Connection& c) {
  const wire::Status s = query_status(*c.client, c.peer);
  std::vector<std::string> remote, local;
  for (const auto& m : s.members) {
    if (m.state != "alive") continue;
    (net::is_loopback(m.address) ? local : remote).push_back(m.address);
  }
  remote.insert(remote.end(), local.begin(), local.end());
  if (remote.size() > net::kMaxTokenAddresses) remote.resize(net::kMaxTokenAddresses);
  return remote;
}

int run_invite(const InviteFlags& f) {
  const MeshAccess access = mesh_access(f.mesh, f.peer.empty() ? std::vector<std::string>{} : std::vector{f.peer},
                                        "--peer");
  for (const auto& w : access.warnings) std::fprintf(stderr, "troupe: warning: %s\n", w.c_str());
  net::JoinToken token;
  token.secret = access.security.secret();
  if (!f.peer.empty()) token.addresses = member_addresses(connect_to_mesh(access));
  std::printf("%s\n", net::encode_token(token).c_str());
  std::string listed;
  for (const auto& a : token.addresses) listed += (listed.empty() ? "" : ", ") + a;
  std::fprintf(stderr, "troupe: a join token of mesh %s (from %s) naming %s; it carries the mesh secret: "
                       "share it as you would a password\n",
               access.security.mesh_id().c_str(), (access.source + (access.key_created ? ", created now" : "")).c_str(),
               listed.empty() ? "no member (give --peer HOST:PORT of a running node to include its members)"
                              : ("the members " + listed).c_str());
  return 0;
}

}  // namespace

Action add_keygen_command(CLI::App& app) {
  auto f = std::make_shared<KeygenFlags>();
  CLI::App* cmd = app.add_subcommand("keygen", "Write a new mesh secret to a key file (mode 0600)");
  cmd->add_option("--out", f->out, "The key file to write (refused if it exists, unless --force)")->required();
  cmd->add_flag("--force", f->force, "Replace an existing key file (its mesh's members must all get the new one)");
  return [f] { return run_keygen(*f); };
}

Action add_invite_command(CLI::App& app) {
  auto f = std::make_shared<InviteFlags>();
  CLI::App* cmd = app.add_subcommand("invite", "Print a join token: the mesh secret and the addresses of members");
  cmd->add_option("--peer", f->peer, "HOST:PORT (or a join token) of a running node: its live members go in the token");
  add_mesh_flags(cmd, f->mesh, false);
  return [f] { return run_invite(*f); };
}

}  // namespace troupe::cli
