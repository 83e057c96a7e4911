// The troupe sub-commands. Each registers its flags on the CLI11 app and returns the action to
// run after parsing; actions throw InputError (exit 2) or RuntimeFailure (exit 1).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>

namespace troupe::cli {

using Action = std::function<int()>;

Action add_run_command(CLI::App& app);
Action add_info_command(CLI::App& app);
Action add_convert_command(CLI::App& app);
Action add_synth_command(CLI::App& app);
Action add_node_command(CLI::App& app);
Action add_generate_command(CLI::App& app);
Action add_chat_command(CLI::App& app);
Action add_status_command(CLI::App& app);
Action add_invite_command(CLI::App& app);
Action add_keygen_command(CLI::App& app);
Action add_sim_command(CLI::App& app);
Action add_bench_command(CLI::App& app);

// Registers one command; main.cpp lists them in --help in the order they are added.
using AddCommand = std::function<void(Action (*)(CLI::App&))>;
// The mesh's commands: node, generate, chat, status, invite, keygen, sim (mesh_command_list.cpp).
// A build without the mesh (TROUPE_MESH=OFF) links no_mesh.cpp instead, which adds none.
void add_mesh_commands(const AddCommand& add);

// A sampling seed for a request that names none: from the kernel's entropy source, so that no two
// requests share one (a clock in seconds gives every request of one second the same text).
uint64_t fresh_seed();

// HOST:PORT with a port in 1..65535; InputError naming `flag` otherwise.
void check_address(const std::string& address, const std::string& flag);

}  // namespace troupe::cli
