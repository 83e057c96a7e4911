// The mesh's commands, in the order --help lists them (built with TROUPE_MESH=ON).
#include "commands.hpp"

namespace troupe::cli {

void add_mesh_commands(const AddCommand& add) {
  add(add_node_command);
  add(add_generate_command);
  add(add_chat_command);
  add(add_status_command);
  add(add_invite_command);
  add(add_keygen_command);
  add(add_sim_command);
}

}  // namespace troupe::cli
