#include "troupe/node/node.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "troupe/actors/node_actors.hpp"
#include "troupe/actors/node_context.hpp"
#include "troupe/model/device.hpp"
#include "troupe/model/model_identity.hpp"
#include "troupe/model/layer_pass.hpp"
#include "troupe/net/lan_beacon.hpp"
#include "troupe/net/system_random.hpp"
#include "troupe/net/zmq_transport.hpp"

namespace troupe {

namespace {

caf::actor_system_config& configure(caf::actor_system_config& cfg) {
  // Few scheduler threads that sleep when idle (work sharing): the cores belong to the forward
  // pass, and several nodes may share one machine.
  cfg.set("scheduler.max-threads", 2);
  cfg.set("scheduler.policy", caf::atom("sharing"));
  return cfg;
}

uint64_t instance_number() {
  // A later start of a node at the same address must count as newer: the wall clock in
  // nanoseconds, with random low bits in case two starts share a tick.
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return (uint64_t(ns) & ~uint64_t(0xFFF)) | (std::random_device{}() & 0xFFF);
}

// What a serving node holds beyond its start-up measure, its stage's weights, caches and working
// buffers: ZeroMQ's and the messages' buffers, the allocator's slack, the model file's header
// pages (measured: a 48 MiB node serving three 5 MiB layers peaked 1 MiB above the rest).
constexpr uint64_t kRuntimeSlack = uint64_t(2) << 20;

// The throughput probe's matrix: a quarter of a given budget at most, so that the start-up peak
// stays within it.
std::size_t probe_bytes(const NodeOptions& options) {
  if (!options.mem_budget) return kThroughputProbeBytes;
  return std::clamp<std::size_t>(options.mem_budget / 4, std::size_t(1) << 20, kThroughputProbeBytes);
}

net::ZmqTransport::Options transport_options(const NodeOptions& options) {
  if (!options.security) throw std::invalid_argument("NodeOptions::security is required");
  net::ZmqTransport::Options t;
  t.listen = options.listen;
  t.advertise = options.advertise;
  t.security = *options.security;
  return t;
}

}  // namespace

struct Node::Impl {
  actors::NodeContext context;
  actors::NodeMetrics metrics;
  std::shared_ptr<const Model> model;
  LoadOptions load;
  SystemClock clock;
  net::SystemRandom random;
  ThreadPool pool;
  net::ZmqTransport transport;
  caf::actor_system_config config;
  caf::actor_system system;
  std::unique_ptr<actors::NodeActors> actors;
  std::unique_ptr<net::LanBeacon> beacon;
  bool stopped = false;

  Impl(const NodeOptions& options, std::shared_ptr<const Model> m, const Tokenizer& tokenizer)
      : model(std::move(m)),
        load(options.load),
        pool(options.threads),
        transport(transport_options(options)),
        system(configure(config)) {
    const ModelConfig& mc = model->config;
    context.address = options.advertise.empty() ? options.listen : options.advertise;
    context.name = options.name.empty() ? context.address : options.name;
    context.joins = options.joins;
    context.config = &mc;
    context.tokenizer = &tokenizer;
    context.clock = &clock;
    context.random = &random;
    context.encoding = options.activations;
    context.metrics = &metrics;
    context.traffic = [this] {
      const auto t = transport.traffic();
      return std::array<uint64_t, 4>{t.frames_sent, t.bytes_sent, t.frames_received, t.bytes_received};
    };
    context.memory = process_memory;
    context.seed = random.next();
    if (options.layers) context.initial = transformer_stage(model, pool);
    context.load_layers = [this](LayerRange r) {
      LoadOptions o = load;
      o.layers = r;
      return transformer_stage(std::make_shared<Model>(load_model(model->path, o)), pool);
    };

    wire::MemberInfo& me = context.member;
    me.name = context.name;
    me.address = context.address;
    me.instance = instance_number();
    me.model = model_identity(*model);
    me.model_layers = mc.n_layers;
    me.mem_budget = options.mem_budget ? options.mem_budget : available_memory();
    me.throughput = options.throughput > 0 ? options.throughput : measure_throughput(pool, probe_bytes(options));
    // What this process holds with no stage (code, threads, buffers, the tokenizer): the planner
    // takes it off the budget. A pinned node has loaded its range already, and plans none.
    if (!options.layers) me.base_rss = process_memory()[0];
    me.cores = pool.size();
    me.arch = architecture();
    me.pinned = options.layers;

    // What a range costs, from the model's own matrices (one layer is like any other).
    std::size_t layer_bytes = 0;
    for (const auto& l : model->layers) layer_bytes = std::max(layer_bytes, l.bytes());
    if (layer_bytes == 0) {
      // Only the config is loaded: f32 sizes, as an upper bound for quantized files.
      layer_bytes = 4 * (std::size_t(2) * mc.dim * mc.dim + std::size_t(2) * mc.dim * mc.kv_dim() +
                         std::size_t(3) * mc.dim * mc.hidden_dim + 2 * mc.dim);
    }
    const uint64_t embedding = uint64_t(mc.vocab_size) * mc.dim * 4;
    context.mesh.cost = discovery::model_cost(mc, layer_bytes, embedding, embedding, 1);
    // A session's working buffers, and the log of the rows a stage sent on (a resumed session's
    // new next stage runs from it): a full context of f32 rows.
    const uint64_t log = uint64_t(mc.dim) * uint64_t(mc.seq_len) * 4;
    context.mesh.cost.scratch_bytes = LayerPass::scratch_bytes(mc, mc.seq_len, pool.size()) + log + kRuntimeSlack;
    context.mesh.membership.model_file = model->path;

    for (const auto& j : options.joins) transport.expect_peer(j, "--join");
    actors = std::make_unique<actors::NodeActors>(system, &context, &transport, actors::NodeActors::Options{});
    if (options.discover_port > 0) {
      beacon = std::make_unique<net::LanBeacon>(
          context.address, me.model, *options.security, options.discover_port,
          [to = actors.get()](const std::string& address) { to->discovered(address); });
    }
  }

  void stop() {
    if (stopped) return;
    stopped = true;
    beacon.reset();
    // Tell the mesh first, so that it re-plans at once instead of waiting for a suspicion.
    actors->leave();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the frames go out
    actors->stop();
    system.await_all_actors_done();
  }
};

Node::Node(NodeOptions options, std::shared_ptr<const Model> model, const Tokenizer& tokenizer)
    : impl_(std::make_unique<Impl>(options, std::move(model), tokenizer)) {}

Node::~Node() { stop(); }

void Node::stop() {
  if (impl_) impl_->stop();
}

}  // namespace troupe
