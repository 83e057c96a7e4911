// `troupe node`: one device of the mesh. Listens at --listen, joins the mesh through the --join
// members, and holds the layers the coordinator assigns it (or, with --layers, the range pinned
// by hand, loaded before it listens), until SIGINT or SIGTERM.
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "commands.hpp"
#include "http_server.hpp"
#include "mesh_access.hpp"
#include "model_paths.hpp"
#include "troupe/discovery/planner.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"
#include "troupe/model/llama_gguf.hpp"
#include "troupe/model/mapped_file.hpp"
#include "troupe/model/model_identity.hpp"
#include "troupe/net/addresses.hpp"
#include "troupe/node/node.hpp"
#include "troupe/text/chat_template.hpp"

namespace troupe::cli {

namespace {

struct NodeFlags {
  std::string listen;
  std::string advertise;
  MeshFlags mesh;
  std::string model;
  std::string tokenizer;
  std::vector<std::string> joins;  // HOST:PORT or join tokens
  std::string layers;
  std::string name;
  std::string mem_budget;
  double throughput = 0;
  bool discover = false;
  int discover_port = 7947;
  HttpFlags http;
  std::string chat_template;
  std::string activations = "f32";
  int threads = 0;
};

// A model's shape without placing any weights, for a node that holds no stage.
ModelConfig read_model_config(const std::string& path) {
  MappedFile file(path);
  const auto bytes = file.bytes();
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0) {
    const GgufFile gguf(std::move(file));
    return parse_gguf_model(gguf).config;
  }
  return parse_llama2c_checkpoint(file).config;
}

LayerRange parse_layers(const std::string& text) {
  const auto colon = text.find(':');
  auto number = [&](const std::string& s) {
    if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos) {
      throw InputError("--layers " + text + ": expected A:B, the half-open layer range [A, B)");
    }
    return std::stoi(s);
  };
  if (colon == std::string::npos) number("");
  const LayerRange r{number(text.substr(0, colon)), number(text.substr(colon + 1))};
  if (r.end <= r.begin) throw InputError("--layers " + text + ": the range is empty");
  return r;
}

// "512M", "2G", "1.5GiB", "1000000": bytes.
uint64_t parse_size(const std::string& text) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  if (unit == "K" || unit == "KB" || unit == "KIB") scale = 1024.0;
  if (unit == "M" || unit == "MB" || unit == "MIB") scale = 1024.0 * 1024;
  if (unit == "G" || unit == "GB" || unit == "GIB") scale = 1024.0 * 1024 * 1024;
  if (unit == "T" || unit == "TB" || unit == "TIB") scale = 1024.0 * 1024 * 1024 * 1024;
  if (used == 0 || scale == 0 || !std::isfinite(value) || value <= 0) {
    throw InputError("--mem-budget " + text + ": expected a size such as 512M or 2G");
  }
  return static_cast<uint64_t>(value * scale);
}

// The node's options from its flags, checked (InputError naming the flag at fault); `access`
// gets the mesh the --join values and key flags name.
NodeOptions node_options(const NodeFlags& flags, MeshAccess& access) {
  check_address(flags.listen, "--listen");
  if (!flags.advertise.empty()) check_address(flags.advertise, "--advertise");
  if (!flags.chat_template.empty() && !chat_template_named(flags.chat_template)) {
    throw InputError("--chat-template " + flags.chat_template +
                     ": expected llama2, llama3, chatml or zephyr");
  }
  if (flags.threads < 0) throw InputError("--threads: must be 0 (all cores) or more");
  if (flags.throughput < 0 || !std::isfinite(flags.throughput)) {
    throw InputError("--throughput: expected GB/s, a positive number");
  }
  if (flags.discover_port < 1 || flags.discover_port > 65535) {
    throw InputError("--discover-port " + std::to_string(flags.discover_port) + ": expected 1..65535");
  }
  access = mesh_access(flags.mesh, flags.joins, "--join");
  if (!flags.joins.empty() && access.addresses.empty()) {
    throw InputError("--join: the join token names no member: make it with troupe invite --peer HOST:PORT");
  }
  NodeOptions options;
  options.listen = flags.listen;
  options.security = access.security;
  options.joins = access.addresses;
  options.advertise = net::advertised_address(
      flags.listen, flags.advertise,
      options.joins.empty() ? std::nullopt : std::optional<std::string>(options.joins.front()));
  options.name = flags.name.empty() ? options.advertise : flags.name;
  if (options.name.size() > wire::kMaxNameBytes) throw InputError("--name: too long");
  options.threads = flags.threads;
  options.mem_budget = flags.mem_budget.empty() ? 0 : parse_size(flags.mem_budget);
  options.throughput = flags.throughput;
  options.discover_port = flags.discover ? flags.discover_port : 0;
  options.activations = flags.activations == "f16" ? wire::ActivationEncoding::f16
                                                   : wire::ActivationEncoding::f32;
  if (!flags.layers.empty()) options.layers = parse_layers(flags.layers);
  return options;
}

// Says at start how the node's connections are secured, and what the key file had to say.
void log_security(const NodeOptions& options, const MeshAccess& access) {
  for (const auto& w : access.warnings) spdlog::warn("{}", w);
  if (access.key_created) spdlog::info("{}: created, with a new secret", access.source);
  if (access.security.is_insecure()) {
    spdlog::warn("--insecure: connections are neither authenticated nor encrypted; whoever reaches {} "
                 "can join this mesh and read every prompt and answer",
                 options.listen);
  } else {
    spdlog::info("CURVE on every connection, mesh {} (secret from {})", access.security.mesh_id(), access.source);
  }
  if (options.advertise != options.listen) spdlog::info("advertised to peers as {}", options.advertise);
}

// The model as far as the node needs it at start: the pinned layers' weights, else the shape.
std::shared_ptr<Model> node_model(const std::string& model_path, const NodeOptions& options) {
  auto model = std::make_shared<Model>();
  if (options.layers) {
    LoadOptions load;
    load.layers = options.layers;
    *model = load_model(model_path, load);
  } else {
    model->path = model_path;
    model->config = read_model_config(model_path);
  }
  return model;
}

// The HTTP door of --http, entering the mesh through this node as a client does.
std::unique_ptr<HttpServer> start_http(HttpOptions o, const NodeFlags& flags, const NodeOptions& options,
                                       const std::string& model_path, const Model& model,
                                       const Tokenizer& tokenizer) {
  // A client that closes its connection mid-answer must not kill the node.
  signal(SIGPIPE, SIG_IGN);
  o.node_address = net::local_address(options.listen);
  o.security = *options.security;
  o.model.id = std::filesystem::path(model_path).stem().string();
  o.model.seq_len = model.config.seq_len;
  struct stat file {};
  if (stat(model_path.c_str(), &file) == 0) o.model.created = static_cast<int64_t>(file.st_mtime);
  o.model.chat_template = flags.chat_template;
  const ChatTemplate chat = choose_chat_template(tokenizer, flags.chat_template);
  o.chat_template = chat_template_name(chat);
  o.tokenizer = &tokenizer;
  auto server = std::make_unique<HttpServer>(o);
  spdlog::info("HTTP API on http://{}/ (model '{}', chat template {}{}; {})", o.address, o.model.id,
               chat_template_name(chat),
               !flags.chat_template.empty()                       ? ", from --chat-template"
               : recognize_chat_template(tokenizer.chat_template) ? ", from the model file"
                                                                  : ", the default",
               o.access.api_key.empty() ? "no API key" : "API key required");
  return server;
}

int run_node(const NodeFlags& flags) {
  // Termination signals are taken by sigwait below, in this thread: block them before any other
  // thread (thread pool, actor system, ZeroMQ) exists, so that all inherit the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::optional<HttpOptions> http = http_options(flags.http);
  MeshAccess access{net::MeshSecurity::insecure(), {}, "", false, {}};
  const NodeOptions options = node_options(flags, access);

  auto logger = spdlog::stderr_color_mt(options.name);
  logger->set_pattern("%^[%H:%M:%S.%e] %n %l%$: %v");
  spdlog::set_default_logger(logger);

  const std::string model_path = resolve_model(flags.model);
  const std::shared_ptr<Model> model = node_model(model_path, options);
  const Tokenizer tokenizer = load_tokenizer(model_path, model->config.vocab_size, flags.tokenizer);
  log_security(options, access);  // (after the model: a bad model file stays a one-line error)

  Node node(options, model, tokenizer);
  spdlog::info("listening on {}, model {} ({}), layers {}", options.listen, model_path,
               model_identity(*model),
               options.layers ? discovery::format_range(*options.layers) : "as the coordinator plans");
  std::unique_ptr<HttpServer> server;
  if (http) server = start_http(std::move(*http), flags, options, model_path, *model, tokenizer);
  int stop_signal = 0;
  sigwait(&stop_signals, &stop_signal);
  spdlog::info("stopping ({})", strsignal(stop_signal));
  // The HTTP door first closes, then the node; streams still open end when the node is gone.
  if (server) server->stop();
  node.stop();
  server.reset();
  return 0;
}

}  // namespace

Action add_node_command(CLI::App& app) {
  auto flags = std::make_shared<NodeFlags>();
  CLI::App* cmd = app.add_subcommand("node", "Run one device of the mesh");
  cmd->add_option("--listen", flags->listen, "HOST:PORT to listen on (peers and clients); 0.0.0.0:PORT or [::]:PORT for every interface")->required();
  cmd->add_option("--advertise", flags->advertise,
                  "HOST:PORT peers dial to reach this node (default: the --listen address, or for "
                  "0.0.0.0 the address of the interface toward the first --join peer)");
  cmd->add_option("--model", flags->model, "Model file (GGUF or llama2.c checkpoint) or name")
      ->required();
  cmd->add_option("--tokenizer", flags->tokenizer, "Tokenizer file (default: the model's)");
  cmd->add_option("--join", flags->joins, "HOST:PORT of a node to join, or a join token (repeatable)");
  add_mesh_flags(cmd, flags->mesh);
  cmd->add_option("--layers", flags->layers,
                  "Pin the half-open layer range A:B to this node (default: the coordinator plans)");
  cmd->add_option("--name", flags->name, "Name in the mesh (default: the --listen address)");
  cmd->add_option("--mem-budget", flags->mem_budget,
                  "Memory the whole process may hold: weights, caches, buffers, code (e.g. 2G; default: the "
                  "memory available)");
  cmd->add_flag("--discover", flags->discover,
               "Find nodes of the same model on the local network (UDP multicast beacons)");
  cmd->add_option("--discover-port", flags->discover_port, "UDP port of the beacons (default 7947)");
  cmd->add_option("--throughput", flags->throughput,
                  "GB/s the planner weighs this node by (default: measured at start)");
  add_http_flags(*cmd, flags->http);
  cmd->add_option("--chat-template", flags->chat_template,
                  "Chat template for /v1/chat/completions and /v1/responses: llama2, llama3, chatml or zephyr "
                  "(default: recognised from the model file, else llama2)");
  cmd->add_option("--threads", flags->threads, "Threads of the forward pass (default: all cores)");
  cmd->add_option("--activations", flags->activations,
                  "How hidden states travel between stages: f32 (exact) or f16")
      ->check(CLI::IsMember({"f32", "f16"}));
  return [flags] { return run_node(*flags); };
}

}  // namespace troupe::cli
