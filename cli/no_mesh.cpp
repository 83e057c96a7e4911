// A troupe built without the mesh (TROUPE_MESH=OFF: the engine alone, e.g. for riscv64) has no
// mesh commands; `troupe node` and the like are then unknown commands (exit 2).
#include "commands.hpp"

namespace troupe::cli {

void add_mesh_commands(const AddCommand&) {}

}  // namespace troupe::cli
