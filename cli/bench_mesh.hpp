// `troupe bench --mesh PEER`: a mesh's pipeline measured stage by stage (bench_mesh.cpp). The
// engine's bench command takes it through add_bench_mesh, so that it needs nothing of the mesh's
// libraries itself.
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace troupe::cli {

// What `troupe bench` passes on to the mesh mode.
struct BenchSettings {
  int gen_tokens = 32;
  int reps = 3;
  bool json = false;
  std::string report;  // --report FILE.html
  bool with_models = false;  // model files were given too
};

// Runs the mesh mode when --mesh was given (its exit code); nullopt when it was not.
using MeshBench = std::function<std::optional<int>(const BenchSettings&)>;

// Adds --mesh PEER and the mesh's access flags (--mesh-key, --insecure) to `bench`.
MeshBench add_bench_mesh(CLI::App* bench);

}  // namespace troupe::cli
