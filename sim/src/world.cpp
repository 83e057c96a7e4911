// The event loop and the nodes' processes.
#include "world.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>

#include "stand_in_model.hpp"
#include "troupe/model/error.hpp"
#include "troupe/text/gguf_vocabulary.hpp"

namespace troupe::sim {

namespace {

// Processes start out of step with each other within one mesh tick (actors/src/actors.hpp's
// kMeshTick), as real ones do.
constexpr Nanos kStartSpread = 25ms;
// Nodes' clocks start here, so that a clock set back by a skew fault stays positive.
constexpr Nanos kEpoch = std::chrono::hours(1);
// The invariants are checked this often.
constexpr Nanos kCheckEvery = 100ms;

std::string node_address(int index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "n%05d:7000", index);  // zero-padded: address order = index order
  return buf;
}

// The nodes' log lines, into the trace file at the simulated time (not into the trace hash: a
// run with a trace file is the same run as one without).
class TraceLog final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  TraceLog(std::FILE* file, const Nanos& now) : file_(file), now_(now) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::fprintf(file_, "%.6f log %.*s\n", double(now_.count()) / 1e9, int(msg.payload.size()), msg.payload.data());
  }
  void flush_() override {}

 private:
  std::FILE* file_;
  const Nanos& now_;
};

// While a run lasts, the actors log into the trace file, or nowhere.
class LogToTrace {
 public:
  LogToTrace(std::FILE* file, const Nanos& now) : previous_(spdlog::default_logger()) {
    auto logger = file ? std::make_shared<spdlog::logger>("sim", std::make_shared<TraceLog>(file, now))
                       : std::make_shared<spdlog::logger>("sim");
    logger->set_level(file ? spdlog::level::info : spdlog::level::off);
    spdlog::set_default_logger(std::move(logger));
  }
  ~LogToTrace() { spdlog::set_default_logger(previous_); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
};

caf::actor_system_config& testing(caf::actor_system_config& cfg) {
  cfg.set("scheduler.policy", caf::atom("testing"));
  cfg.set("logger.verbosity", caf::atom("quiet"));
  return cfg;
}

}  // namespace

uint64_t mix(uint64_t a, uint64_t b) {
  Rng r{a ^ (b * 0xD6E8FEB86659FD93ull)};
  return r.next();
}

SimClock::time_point SimClock::now() const { return world_.local_time(*world_.nodes_[node_]); }

World::World(const Scenario& scenario, uint64_t seed, const Options& options)
    : scenario_(scenario),
      options_(options),
      seed_(seed),
      rng_{mix(seed, 0x5e1)},
      model_(price_model(scenario.model, "model")),
      tokenizer_(TokenizerKind::spm, synthetic_vocabulary(model_.config.vocab_size)) {
  mesh_config_.cost = model_.cost;
  if (!options_.trace_path.empty()) {
    trace_file_ = std::fopen(options_.trace_path.c_str(), "w");
    if (!trace_file_) throw InputError(options_.trace_path + ": cannot write the trace file");
  }
  system_ = std::make_unique<caf::actor_system>(testing(caf_config_));
  scheduler_ = &dynamic_cast<caf::scheduler::test_coordinator&>(system_->scheduler());
  caf_epoch_ = scheduler_->clock().current_time;
}

World::~World() {
  // Every process ends, and its actors run their exits, before the actor system goes.
  for (auto& n : nodes_) {
    if (!n->process) continue;
    unpark_stage(*n);
    n->process->actors->stop();
    graveyard_.push_back(std::move(n->process));
  }
  stage_jobs_.clear();
  tasks_.clear();
  run_actors();
  system_.reset();
  if (trace_file_) std::fclose(trace_file_);
}

void World::schedule(Nanos at, EventKind kind, int a, uint64_t b, uint64_t c) {
  queue_.push(Event{at.count(), seq_++, kind, a, b, c});
}

discovery::TimePoint World::local_time(const SimNode& n) const {
  Nanos skew = n.skew;
  for (const Drift& d : n.drifts) {  // a drift has gained the part of its skew that its time has run
    const Nanos ran = std::min(now_ - d.from, d.over);
    skew += Nanos(int64_t(double(d.by.count()) * double(ran.count()) / double(d.over.count())));
  }
  return discovery::TimePoint(std::chrono::duration_cast<discovery::TimePoint::duration>(kEpoch + now_ + skew));
}

void World::trace(const char* what, int64_t a, int64_t b, const std::string& text) {
  auto feed = [&](const void* p, std::size_t len) {
    const auto* bytes = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < len; i++) hash_ = (hash_ ^ bytes[i]) * 1099511628211ull;
  };
  const int64_t t = now_.count();
  feed(&t, sizeof t);
  feed(what, std::strlen(what));
  feed(&a, sizeof a);
  feed(&b, sizeof b);
  feed(text.data(), text.size());
  if (trace_file_) {
    std::fprintf(trace_file_, "%.6f %s %" PRId64 " %" PRId64 "%s%s\n", double(t) / 1e9, what, a, b,
                 text.empty() ? "" : " ", text.c_str());
  }
}

// --- nodes ---------------------------------------------------------------------------------------

int World::add_node(const std::string& profile) {
  auto n = std::make_unique<SimNode>();
  n->index = int(nodes_.size());
  n->address = node_address(n->index);
  n->name = profile + "-" + std::to_string(n->index);
  n->profile = &device_profile(profile, "profile");
  n->life = SimNode::Life::crashed;  // until started
  by_address_[n->address] = n->index;
  nodes_.push_back(std::move(n));
  return nodes_.back()->index;
}

// A process of `troupe node` on the device: its context as Node fills it in, with the device's
// stand-in model and the simulated transport and clock, and the actors.
void World::start_node(SimNode& n, int via) {
  n.life = SimNode::Life::up;
  n.instance++;
  n.generation++;
  n.leadership = {};
  n.plan_version = 0;
  n.mesh = nullptr;
  n.device_free = now_;
  const int index = n.index;
  const uint64_t generation = n.generation;
  auto p = std::make_unique<NodeProcess>(*this, index, generation);
  actors::NodeContext& c = p->context;
  c.name = n.name;
  c.address = n.address;
  wire::MemberInfo& info = c.member;
  info.name = n.name;
  info.address = n.address;
  info.instance = n.instance;
  info.model = scenario_.model.shape + "-" + scenario_.model.type;
  info.model_layers = model_.config.n_layers;
  info.mem_budget = n.profile->mem_budget();
  info.throughput = n.profile->throughput();
  info.cores = n.profile->cores;
  info.arch = "sim";
  if (via >= 0) c.joins.push_back(nodes_[via]->address);
  c.mesh = mesh_config_;
  c.config = &model_.config;
  // The device runs one thing at a time: each piece of work starts when the last is done.
  auto spend = [this, index, generation](Nanos cost) {
    SimNode& node = *nodes_[index];
    if (node.generation == generation) node.device_free = std::max(node.device_free, now_) + cost;
  };
  c.load_layers = [this, index, spend](LayerRange range) -> std::shared_ptr<const StageModel> {
    const DeviceProfile* device = nodes_[index]->profile;
    spend(load_time(*device, model_, range));
    trace("load", index, range.begin, std::to_string(range.end) + " busy " + std::to_string((nodes_[index]->device_free - now_).count() / 1000000));
    return std::make_shared<StandInModel>(model_, range, device, spend);
  };
  c.tokenizer = &tokenizer_;
  c.clock = &p->clock;
  c.seed = mix(seed_, uint64_t(index) << 20 | n.instance);
  p->random = SeededRandom(mix(c.seed, 0x5E551D));
  c.random = &p->random;
  c.metrics = &p->metrics;
  c.traffic = [t = &p->transport] { return t->traffic(); };
  c.sim_hook = &p->hook;
  actors::NodeActors::Options options;
  options.detached_stage = false;  // one thread runs every actor, in the coordinator's order
  trace(n.instance == 1 ? "start" : "restart", index, int64_t(n.instance), c.joins.empty() ? "" : "via " + c.joins[0]);
  p->actors = std::make_unique<actors::NodeActors>(*system_, &p->context, &p->transport, std::move(options));
  n.stage_job = dynamic_cast<caf::resumable*>(caf::actor_cast<caf::abstract_actor*>(p->actors->stage_actor()));
  stage_jobs_[n.stage_job] = index;
  n.process = std::move(p);
}

void World::crash(SimNode& n, SimNode::Life life) {
  if (n.life != SimNode::Life::up) return;
  trace(life == SimNode::Life::left ? "left" : "crash", n.index, int64_t(n.instance));
  n.life = life;
  n.generation++;
  n.mesh = nullptr;
  unpark_stage(n);  // to run its exit
  stage_jobs_.erase(n.stage_job);
  n.stage_job = nullptr;
  n.process->actors->stop();
  count_stage_work(*n.process);
  graveyard_.push_back(std::move(n.process));  // its actors still have their exits to run
  entry_lost(n);
  connections_lost(n);
}

// The device is busy until device_free: what the stage sends now leaves then.
Nanos NodeHook::device_busy() const {
  const SimNode& n = *world_.nodes_[node_];
  return n.generation == generation_ ? std::max(Nanos(0), n.device_free - world_.now()) : Nanos(0);
}

void NodeHook::observe(const discovery::Mesh& mesh) {
  SimNode& n = *world_.nodes_[node_];
  if (n.generation == generation_) world_.observed(n, mesh);
}

bool NodeHook::broken(discovery::BrokenVariant variant) const {
  return world_.options_.broken_variants.count(variant) > 0;
}

// What the node actor reports after every event it handles.
void World::observed(SimNode& n, const discovery::Mesh& mesh) {
  n.mesh = &mesh;
  check_leadership(n);
  if (mesh.plan().version != n.plan_version) {
    n.plan_version = mesh.plan().version;
    trace("plan", n.index, int64_t(n.plan_version), std::to_string(mesh.plan().stages.size()) + " stages");
  }
}

// Runs the actors until none has a message to handle, in the coordinator's order. A stage whose
// device is still busy waits out of the queue, as a stage actor on its own thread is blocked in
// the forward pass on a device: it takes its next message when the device is done.
void World::run_actors() {
  auto& jobs = scheduler_->jobs;
  while (!jobs.empty()) {
    caf::resumable* job = jobs.front();
    if (auto it = stage_jobs_.find(job); it != stage_jobs_.end()) {
      SimNode& n = *nodes_[it->second];
      if (n.device_free > now_) {
        jobs.pop_front();
        n.stage_parked = true;
        schedule(n.device_free, EventKind::device_free, n.index, n.generation);
        continue;
      }
    }
    scheduler_->run_once();
  }
  graveyard_.clear();
}

void World::unpark_stage(SimNode& n) {
  if (!n.stage_parked) return;
  n.stage_parked = false;
  scheduler_->jobs.push_back(n.stage_job);
}

int World::live_random(int except) {
  std::vector<int> pool;
  for (const auto& n : nodes_) {
    if (n->life == SimNode::Life::up && n->index != except) pool.push_back(n->index);
  }
  return pool.empty() ? -1 : pool[rng_.below(pool.size())];
}

// A live node that `node` reaches and is reached by (any live node when none is): a device joins
// through an address that answers it, as a user would give one. Joining through one across a
// partition, a node would know of nobody and make a mesh of its own beside the one it can reach.
int World::join_through(int node) {
  std::vector<int> pool;
  for (const auto& n : nodes_) {
    if (n->life == SimNode::Life::up && n->index != node && !blocked(node, n->index) && !blocked(n->index, node)) {
      pool.push_back(n->index);
    }
  }
  return pool.empty() ? live_random(node) : pool[rng_.below(pool.size())];
}

int World::join_via(int node, Joining joining) {
  switch (joining) {
    case kFirst:
      return -1;
    case kThroughFirst:
      return 0;
    case kThroughEarlier:
      return int(rng_.below(uint64_t(node)));
    case kThroughLive:
      break;
  }
  return join_through(node);
}

void World::start_soon(int node, Joining joining) {
  schedule(now_ + Nanos(rng_.below(uint64_t(kStartSpread.count()))), EventKind::start, node, joining);
}

// --- the run -------------------------------------------------------------------------------------

Summary World::run() {
  const auto wall_start = std::chrono::steady_clock::now();
  const LogToTrace log(trace_file_, now_);
  for (const auto& g : scenario_.nodes) {
    for (int i = 0; i < g.count; i++) add_node(g.profile);
  }
  for (auto& n : nodes_) {  // the first starts first; the others join through it, or a random earlier one
    if (n->index == 0) {
      schedule(Nanos(0), EventKind::start, 0, kFirst);
    } else {
      start_soon(n->index, scenario_.join == StartJoin::first ? kThroughFirst : kThroughEarlier);
    }
  }
  const Nanos last_fault = schedule_faults();
  make_sessions();
  schedule(Nanos(0), EventKind::check);
  // Long enough to see the mesh settle after the last fault; then the sessions still running
  // get `drain` to end.
  end_ = std::max(scenario_.duration, last_fault + scenario_.expect.converge_within);
  hard_end_ = end_ + scenario_.expect.drain;
  while (step()) {
  }
  run_actors();
  check_final();
  return summarize(wall_start);
}

Nanos World::schedule_faults() {
  Nanos last_fault{0};
  for (std::size_t i = 0; i < scenario_.faults.size(); i++) {
    const Fault& f = scenario_.faults[i];
    schedule(f.at, EventKind::fault, int(i));
    last_fault = std::max(last_fault, f.at);
    if (f.until) {
      schedule(*f.until, EventKind::fault_end, int(i));
      last_fault = std::max(last_fault, *f.until);
    }
  }
  return last_fault;
}

bool World::sessions_open() const {
  for (const auto& s : sessions_) {
    if (s.outcome == SimSession::Outcome::waiting || s.outcome == SimSession::Outcome::running) return true;
  }
  return false;
}

// Two sources of events in one order of time: the simulator's queue (frames, tasks, faults,
// clients) and the actors' timers (the mesh's ticks, the sessions' timeouts) on CAF's clock.
bool World::step() {
  run_actors();
  auto& clock = scheduler_->clock();
  const auto& timers = clock.schedule();
  const bool timer_next = !timers.empty() && (queue_.empty() || timers.begin()->first - caf_epoch_ <= Nanos(queue_.top().t));
  if (timer_next) {
    const Nanos t = timers.begin()->first - caf_epoch_;
    if (t > hard_end_) return false;
    now_ = std::max(now_, t);
    clock.current_time = caf_epoch_ + now_;
    clock.trigger_timeout();
    events_++;
    return true;
  }
  if (queue_.empty()) return false;
  const Event e = queue_.top();
  if (Nanos(e.t) > hard_end_) return false;
  if (Nanos(e.t) > end_ && e.kind == EventKind::check && !sessions_open()) return false;
  queue_.pop();
  now_ = Nanos(e.t);
  clock.current_time = caf_epoch_ + now_;
  events_++;
  handle(e);
  return true;
}

void World::handle(const Event& e) {
  switch (e.kind) {
    case EventKind::start: {
      SimNode& n = *nodes_[e.a];
      if (n.life == SimNode::Life::up) break;  // started twice by overlapping restarts
      start_node(n, join_via(n.index, Joining(e.b)));
      break;
    }
    case EventKind::deliver:
      deliver(e.a);
      break;
    case EventKind::task:
      run_task(e.a, e.b, int(e.c));
      break;
    case EventKind::left: {
      SimNode& n = *nodes_[e.a];
      if (n.generation == e.b) crash(n, SimNode::Life::left);
      break;
    }
    case EventKind::fault:
      fault_starts(e.a);
      break;
    case EventKind::fault_end:
      fault_ends(e.a);
      break;
    case EventKind::arrival:
      session_arrival(sessions_[e.a]);
      break;
    case EventKind::connection_lost: {
      SimNode& n = *nodes_[e.a];
      if (!up(n.index) || n.generation != e.b) break;
      trace("connection_lost", n.index, int64_t(e.c));
      const auto& events = n.process->transport.events();
      if (events.peer_lost) events.peer_lost(nodes_[e.c]->address);
      break;
    }
    case EventKind::device_free: {
      SimNode& n = *nodes_[e.a];
      if (n.generation == e.b) unpark_stage(n);
      break;
    }
    case EventKind::check:
      check_periodic();
      schedule(now_ + kCheckEvery, EventKind::check);
      break;
  }
}

Summary World::summarize(std::chrono::steady_clock::time_point wall_start) {
  summary_.seed = seed_;
  summary_.events = events_;
  summary_.sim_seconds = double(now_.count()) / 1e9;
  summary_.nodes = int(nodes_.size());
  summary_.sessions = int(sessions_.size());
  for (const auto& n : nodes_) {
    if (n->process) count_stage_work(*n->process);
  }
  for (const auto& s : sessions_) {
    summary_.sessions_completed += s.outcome == SimSession::Outcome::completed;
    summary_.sessions_failed += s.outcome == SimSession::Outcome::failed;
  }
  if (violations_total_ > int(summary_.violations.size())) {
    summary_.violations.push_back("... " + std::to_string(violations_total_ - int(summary_.violations.size())) + " more");
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016" PRIx64, hash_);
  summary_.trace_hash = hex;
  summary_.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return summary_;
}

void World::count_stage_work(const NodeProcess& p) {
  summary_.stage_positions += p.metrics.stage_positions.load();
  summary_.sessions_resumed += p.metrics.sessions_resumed.load();
  summary_.positions_kept += p.metrics.positions_kept.load();
}

Summary simulate(const Scenario& scenario, uint64_t seed, const Options& options) {
  World world(scenario, seed, options);
  return world.run();
}

}  // namespace troupe::sim
