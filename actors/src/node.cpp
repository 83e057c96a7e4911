#include "troupe/actors/node.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "actors.hpp"
#include "lan_beacon.hpp"
#include "messages.hpp"
#include "troupe/actors/node_context.hpp"
#include "troupe/actors/node_actors.hpp"
#include "troupe/actors/zmq_transport.hpp"
#include "troupe/kernels/kernels.hpp"
#include "troupe/runtime/gguf.hpp"
#include "troupe/runtime/mapped_file.hpp"

namespace troupe {

std::string model_identity(const Model& model) {
  // The bytes before the weights: a GGUF's header, metadata and tensor table; a llama2.c
  // checkpoint's header (its tensor table is implied by the header), with the file's size.
  const MappedFile file(model.path);
  const auto bytes = file.bytes();
  std::size_t head = std::min<std::size_t>(bytes.size(), 28);
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0) {
    const GgufFile gguf = GgufFile::open(model.path);
    head = bytes.size();
    for (const auto& t : gguf.tensors()) {
      if (t.data) head = std::min<std::size_t>(head, std::size_t(t.data - gguf.file().bytes().data()));
    }
  }
  uint64_t h = 1469598103934665603ULL;  // FNV-1a 64
  auto mix = [&](unsigned char c) { h = (h ^ c) * 1099511628211ULL; };
  for (std::size_t i = 0; i < head; i++) mix(static_cast<unsigned char>(bytes[i]));
  for (int i = 0; i < 8; i++) mix(static_cast<unsigned char>(uint64_t(bytes.size()) >> (8 * i)));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  const ModelConfig& c = model.config;
  return std::string(hex) + " (" + std::to_string(c.n_layers) + " layers, dim " +
         std::to_string(c.dim) + ", vocab " + std::to_string(c.vocab_size) + ")";
}

namespace {

caf::actor_system_config& configure(caf::actor_system_config& cfg) {
  // Few scheduler threads that sleep when idle (work sharing): the cores belong to the forward
  // pass, and several nodes may share one machine.
  cfg.set("scheduler.max-threads", 2);
  cfg.set("scheduler.policy", caf::atom("sharing"));
  return cfg;
}

// GB/s at which this node's kernels read f32 weights with its thread pool: a matrix bigger than
// the caches, multiplied a few times (~50 ms). The planner splits layers in proportion to it.
double measure_throughput(ThreadPool& pool) {
  const int rows = 2048, cols = 2048;  // 16 MiB
  std::vector<float> w(std::size_t(rows) * cols, 0.001f), x(cols, 1.0f), y(rows);
  const auto& ops = kernels::matvec_ops();
  auto once = [&] {
    pool.run(pool.size(), [&](int chunk, int) {
      const Range r = split_range(rows, pool.size(), chunk);
      ops.f32(y.data(), w.data(), x.data(), cols, r.begin, r.end);
    });
  };
  once();
  const auto t0 = std::chrono::steady_clock::now();
  int runs = 0;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(40) || runs < 3) {
    once();
    runs++;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return double(runs) * double(w.size()) * 4 / s / 1e9;
}

// MemAvailable: what a node may use when --mem-budget does not say.
uint64_t available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

const char* architecture() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#elif defined(__riscv)
  return "riscv64";
#else
  return "unknown";
#endif
}

uint64_t instance_number() {
  // A later start of a node at the same address must count as newer: the wall clock in
  // nanoseconds, with random low bits in case two starts share a tick.
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return (uint64_t(ns) & ~uint64_t(0xFFF)) | (std::random_device{}() & 0xFFF);
}

}  // namespace

struct Node::Impl {
  actors::NodeContext context;
  actors::NodeMetrics metrics;
  std::shared_ptr<const Model> model;
  LoadOptions load;
  SystemClock clock;
  ThreadPool pool;
  ZmqTransport transport;
  caf::actor_system_config config;
  caf::actor_system system;
  std::unique_ptr<actors::NodeActors> actors;
  std::unique_ptr<actors::LanBeacon> beacon;
  bool stopped = false;

  Impl(const NodeOptions& options, std::shared_ptr<const Model> m, const Tokenizer& tokenizer)
      : model(std::move(m)), load(options.load), pool(options.threads), transport(options.listen),
        system(configure(config)) {
    const ModelConfig& mc = model->config;
    context.name = options.name.empty() ? options.listen : options.name;
    context.address = options.listen;
    context.joins = options.joins;
    context.config = &mc;
    context.tokenizer = &tokenizer;
    context.clock = &clock;
    context.encoding = options.activations;
    context.metrics = &metrics;
    context.traffic = [this] {
      const auto t = transport.traffic();
      return std::array<uint64_t, 4>{t.frames_sent, t.bytes_sent, t.frames_received, t.bytes_received};
    };
    context.seed = std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32);
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
    me.throughput = options.throughput > 0 ? options.throughput : measure_throughput(pool);
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

    actors = std::make_unique<actors::NodeActors>(system, &context, &transport, actors::NodeActors::Options{});
    if (options.discover_port > 0) {
      beacon = std::make_unique<actors::LanBeacon>(
          context.address, me.model, options.discover_port,
          [to = actors->node_actor()](const std::string& address) {
            caf::anon_send(to, actors::discovered_atom::value, address);
          });
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
