// A troupe built without the mesh (TROUPE_MESH=OFF: the engine alone, e.g. for riscv64) has no
// mesh commands; `troupe node` and the like are then unknown commands (exit 2), and `troupe bench`
// has no --mesh flag.
#include "bench_mesh.hpp"
#include "commands.hpp"

namespace troupe::cli {

void add_mesh_commands(const AddCommand&) {}

MeshBench add_bench_mesh(CLI::App*) {
  return [](const BenchSettings&) -> std::optional<int> { return std::nullopt; };
}

}  // namespace troupe::cli
