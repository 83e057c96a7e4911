#include "troupe/actors/node.hpp"

#include <caf/all.hpp>

#include "actors.hpp"
#include "messages.hpp"
#include "node_context.hpp"
#include "troupe/actors/zmq_transport.hpp"

namespace troupe {

std::string model_fingerprint(const ModelConfig& c) {
  return "dim " + std::to_string(c.dim) + ", hidden " + std::to_string(c.hidden_dim) + ", layers " +
         std::to_string(c.n_layers) + ", heads " + std::to_string(c.n_heads) + "/" +
         std::to_string(c.n_kv_heads) + ", vocab " + std::to_string(c.vocab_size) + ", context " +
         std::to_string(c.seq_len);
}

namespace {

caf::actor_system_config& configure(caf::actor_system_config& cfg) {
  // Few scheduler threads that sleep when idle (work sharing): the cores belong to the forward
  // pass, and several nodes may share one machine.
  cfg.set("scheduler.max-threads", 2);
  cfg.set("scheduler.policy", caf::atom("sharing"));
  return cfg;
}

}  // namespace

struct Node::Impl {
  actors::NodeContext context;
  SystemClock clock;
  ThreadPool pool;
  ZmqTransport transport;
  caf::actor_system_config config;
  caf::actor_system system;
  std::unique_ptr<actors::TransportActor> transport_actor;
  caf::actor node_actor, stage_actor;
  bool stopped = false;

  Impl(const NodeOptions& options, const Model& model, const Tokenizer& tokenizer)
      : pool(options.threads), transport(options.listen), system(configure(config)) {
    context.name = options.name.empty() ? options.listen : options.name;
    context.address = options.listen;
    context.layers = options.layers;
    context.model_fingerprint = model_fingerprint(model.config);
    context.model = &model;
    context.tokenizer = &tokenizer;
    context.pool = &pool;
    context.clock = &clock;
    context.encoding = options.activations;

    transport_actor = std::make_unique<actors::TransportActor>(system, &context, &transport);
    const caf::actor to = transport_actor->handle();
    if (options.layers) {
      // Detached (its own thread): a long prompt batch never holds up heartbeats and clients.
      stage_actor = system.spawn<caf::detached>(actors::stage_actor, &context, to);
    }
    node_actor = system.spawn(actors::node_actor, &context, to, stage_actor, options.joins);
    if (stage_actor) caf::anon_send(stage_actor, actors::init_atom::value, node_actor);
    transport_actor->start(node_actor, stage_actor);
  }

  void stop() {
    if (stopped) return;
    stopped = true;
    // The actors hold each other's handles: they end by exit messages, not by going out of scope
    // (sessions are linked to the node actor and end with it).
    for (auto* a : {&node_actor, &stage_actor}) {
      if (*a) caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
      *a = nullptr;
    }
    transport_actor->stop();  // no more frames in or out
    system.await_all_actors_done();
  }
};

Node::Node(NodeOptions options, const Model& model, const Tokenizer& tokenizer)
    : impl_(std::make_unique<Impl>(options, model, tokenizer)) {}

Node::~Node() { stop(); }

void Node::stop() {
  if (impl_) impl_->stop();
}

}  // namespace troupe
