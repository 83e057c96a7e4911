// troupe: one executable, one sub-command per job (see ../shared/CONTRACT.md).
#include <cstdio>
#include <string>
#include <exception>
#include <vector>

#include "commands.hpp"
#include "version.hpp"
#include "troupe/model/error.hpp"

namespace {

// One line that names what is wrong, then the help to read: the command's own when one was given.
// (CLI11 lists unexpected arguments last one first; they are named here in the order typed.)
int usage_error(CLI::App& app, const CLI::ParseError& error) {
  std::string command = "troupe";
  const CLI::App* at = &app;
  for (const CLI::App* sub : app.get_subcommands()) {
    command += " " + sub->get_name();
    at = sub;
  }
  std::string what = error.what();
  if (dynamic_cast<const CLI::ExtrasError*>(&error)) {
    const std::vector<std::string> extras = at->remaining();
    what = extras.size() == 1 ? "unexpected argument:" : "unexpected arguments:";
    for (const std::string& word : extras) what += " " + word;
  }
  std::fprintf(stderr, "troupe: %s (see %s --help)\n", what.c_str(), command.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace troupe;
  CLI::App app{"troupe: run a Llama-family model on one device or on a mesh of devices"};
  app.require_subcommand(1, 1);
  app.set_version_flag("--version", std::string("troupe ") + cli::kVersion + " (commit " + cli::kCommit + ")",
                       "Print the version and the commit it was built from");
  std::vector<std::pair<CLI::App*, cli::Action>> commands;
  const auto add = [&](cli::Action (*add_command)(CLI::App&)) {
    const std::size_t before = app.get_subcommands({}).size();
    cli::Action action = add_command(app);
    commands.emplace_back(app.get_subcommands({}).at(before), std::move(action));
  };
  add(cli::add_run_command);
  add(cli::add_info_command);
  add(cli::add_convert_command);
  add(cli::add_synth_command);
  cli::add_mesh_commands(add);
  add(cli::add_bench_command);

  // CLI11 would only say "a subcommand is required"; name the word it did not know.
  std::string known;
  bool found = false;
  for (auto& [sub, action] : commands) {
    known += (known.empty() ? "" : ", ") + sub->get_name();
    found |= argc > 1 && sub->check_name(argv[1]);
  }
  if (argc > 1 && argv[1][0] != '-' && !found) {
    std::fprintf(stderr, "troupe: unknown command '%s' (commands: %s)\n", argv[1], known.c_str());
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(app, e);
  }
  try {
    for (auto& [sub, action] : commands) {
      if (sub->parsed()) return action();
    }
  } catch (const InputError& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "troupe: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return 1;
  }
  return 0;
}
