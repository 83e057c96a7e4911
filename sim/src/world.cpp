// The event loop, the nodes' hosts, the links and the faults.
#include "world.hpp"

#include <algorithm>
#include <chrono>
#include <cinttypes>

#include "troupe/runtime/error.hpp"

namespace troupe::sim {

namespace {

// How often a host runs the mesh protocol's timers, as actors/src/actors.hpp's kMeshTick.
constexpr Nanos kMeshTick = 25ms;
// Nodes' clocks start here, so that a clock set back by a skew fault stays positive.
constexpr Nanos kEpoch = std::chrono::hours(1);
// A lost segment on a session's TCP connection costs a retransmission timeout, not the frame.
constexpr Nanos kRetransmit = 200ms;

std::string node_address(int index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "n%05d:7000", index);  // zero-padded: address order = index order
  return buf;
}

}  // namespace

uint64_t mix(uint64_t a, uint64_t b) {
  Rng r{a ^ (b * 0xD6E8FEB86659FD93ull)};
  return r.next();
}

World::World(const Scenario& scenario, uint64_t seed, const Options& options)
    : scenario_(scenario), options_(options), seed_(seed), rng_{mix(seed, 0x5e1)} {
  model_ = price_model(scenario.model, "model");
  mesh_config_.cost = model_.cost;
  if (options_.tweak_mesh) options_.tweak_mesh(mesh_config_);
  if (!options_.trace_path.empty()) {
    trace_file_ = std::fopen(options_.trace_path.c_str(), "w");
    if (!trace_file_) throw InputError(options_.trace_path + ": cannot write the trace file");
  }
}

World::~World() {
  if (trace_file_) std::fclose(trace_file_);
}

void World::schedule(Nanos at, EventKind kind, int a, uint64_t b, uint64_t c) {
  queue_.push(Event{at.count(), seq_++, kind, a, b, c});
}

discovery::TimePoint World::local_time(const SimNode& n) const {
  Nanos skew = n.skew;
  for (int i : n.drifts) {  // a drift has gained the part of its skew that its time has run
    const Fault& f = scenario_.faults[i];
    const Nanos ran = std::min(now_ - f.at, f.over);
    skew += Nanos(int64_t(double(f.duration.count()) * double(ran.count()) / double(f.over.count())));
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

void World::start_node(SimNode& n, bool joining) {
  n.life = SimNode::Life::up;
  n.instance++;
  n.generation++;
  n.asked.reset();
  n.loaded.reset();
  n.leadership = {};
  n.plan_version = 0;
  wire::MemberInfo info;
  info.name = n.name;
  info.address = n.address;
  info.instance = n.instance;
  info.model = scenario_.model.shape + "-" + scenario_.model.type;
  info.model_layers = model_.config.n_layers;
  info.mem_budget = n.profile->mem_budget();
  info.throughput = n.profile->throughput();
  info.cores = n.profile->cores;
  info.arch = "sim";
  n.mesh = std::make_unique<discovery::Mesh>(info, mesh_config_, mix(seed_, uint64_t(n.index) << 20 | n.instance),
                                             local_time(n));
  std::vector<std::string> joins;
  if (joining) {
    const int via = formed_or_started_ ? live_random(n.index) : 0;  // the first nodes all know node 0
    if (via >= 0) joins.push_back(nodes_[via]->address);
  }
  n.mesh->join(joins, local_time(n));
  trace(n.instance == 1 ? "start" : "restart", n.index, int64_t(n.instance), joins.empty() ? "" : "via " + joins[0]);
  // Hosts tick out of step with each other, as real ones do.
  schedule(now_ + Nanos(rng_.below(uint64_t(kMeshTick.count()))), EventKind::tick, n.index, n.generation);
  react(n);
}

void World::crash(SimNode& n, SimNode::Life life) {
  if (n.life != SimNode::Life::up) return;
  trace(life == SimNode::Life::left ? "left" : "crash", n.index, int64_t(n.instance));
  n.life = life;
  n.generation++;
  n.mesh.reset();
  n.stage_sessions.clear();
  n.ended = discovery::EndedSessions();
  n.asked.reset();
  n.loaded.reset();
  n.load_free = now_;
  for (int slot : n.work) data_free_.push_back(slot);
  n.work.clear();
  n.computing = false;
  entry_lost(n);
  // The process is gone, and its operating system closes its connections: every node that had
  // connected to it hears so from its transport one latency later, as ZeroMQ reports a
  // disconnect (node_actor.cpp passes it to Mesh::connection_lost). A cut link carries no word.
  for (const auto& m : nodes_) {
    if (m->index == n.index || !up(m->index) || blocked(n.index, m->index)) continue;
    if (!links_.count(link_key(m->index, n.index, Transport::Lane::control)) &&
        !links_.count(link_key(m->index, n.index, Transport::Lane::data))) {
      continue;
    }
    schedule(now_ + link_spec(n.index, m->index).latency, EventKind::connection_lost, m->index, m->generation,
             uint64_t(n.index));
  }
}

// The network's settings for frames from `from` to `to`, with the link faults in force (later
// ones win).
LinkSpec World::link_spec(int from, int to) const {
  LinkSpec spec = scenario_.network;
  for (int i : link_faults_) {
    const Fault& f = scenario_.faults[i];
    if (!f.nodes.empty() && std::find(f.nodes.begin(), f.nodes.end(), from) == f.nodes.end() &&
        std::find(f.nodes.begin(), f.nodes.end(), to) == f.nodes.end()) {
      continue;
    }
    if (f.kind == Fault::Kind::loss) spec.loss = f.value;
    if (f.kind == Fault::Kind::latency) spec.latency = f.duration;
    if (f.kind == Fault::Kind::bandwidth) spec.bandwidth = f.value;
  }
  return spec;
}

int World::live_random(int except) {
  std::vector<int> pool;
  for (const auto& n : nodes_) {
    if (n->life == SimNode::Life::up && n->index != except) pool.push_back(n->index);
  }
  return pool.empty() ? -1 : pool[rng_.below(pool.size())];
}

// After every event at a node, its host does what node_actor.cpp's react() does: passes losses
// on to stages and sessions, loads the assigned layers, hands routes to waiting sessions, sends.
void World::react(SimNode& n) {
  discovery::Mesh& m = *n.mesh;
  m.take_warnings();
  for (const auto& c : m.take_changes()) {
    if (discovery::stage_forgets_on(c.after)) stage_peer_lost(n, c.address);
    if (!discovery::entry_reroutes_on(c.after)) continue;
    for (int id : std::vector<int>(n.entries)) {
      SimSession& s = sessions_[id];
      if (std::find(s.stages.begin(), s.stages.end(), c.address) != s.stages.end()) {
        entry_peer_lost(s, c.address, m.name_of(c.address));
      }
    }
  }
  check_leadership(n);
  if (m.plan().version != n.plan_version) {
    n.plan_version = m.plan().version;
    trace("plan", n.index, int64_t(n.plan_version), std::to_string(m.plan().stages.size()) + " stages");
  }
  const auto want = m.assignment();
  if (want != n.asked) {
    n.asked = want;
    stage_hold(n, want);
  }
  hand_routes(n);
  flush(n);
}

// --- links ---------------------------------------------------------------------------------------

bool World::blocked(int from, int to) const {
  for (const auto& c : cuts_) {
    if (c.in_a(from) && c.in_b(to)) return true;
    if (!c.one_way && c.in_b(from) && c.in_a(to)) return true;
  }
  return false;
}

void World::flush(SimNode& n) {
  if (!n.mesh) return;
  for (auto& out : n.mesh->take_outgoing()) {
    auto it = by_address_.find(out.to);
    summary_.frames++;
    if (it == by_address_.end()) {
      summary_.frames_lost++;
      continue;
    }
    const int to = it->second;
    // Sized as the real frame (counted by the codec, not built): the bandwidth model charges
    // for every byte.
    const uint64_t bytes = wire::encoded_size(out.body);
    const LinkSpec spec = link_spec(n.index, to);
    if (blocked(n.index, to) || rng_.chance(spec.loss)) {
      summary_.frames_lost++;
      continue;
    }
    LinkState& link = links_[link_key(n.index, to, Transport::Lane::control)];
    link.free = std::max(now_, link.free) + Nanos(int64_t(double(bytes) / spec.bandwidth * 1e9));
    const Nanos latency = spec.latency;
    const Nanos jitter = Nanos(int64_t((rng_.uniform() * 2 - 1) * double(spec.jitter.count())));
    Nanos arrival = link.free + std::max(Nanos(0), latency + jitter);
    if (rng_.chance(spec.reorder)) {
      arrival += Nanos(int64_t(rng_.uniform() * double((2 * latency + spec.jitter + 1ms).count())));
    } else {
      arrival = std::max(arrival, link.last_arrival);
      link.last_arrival = arrival;
    }
    const int copies = rng_.chance(spec.duplicate) ? 2 : 1;
    for (int i = 0; i < copies; i++) {
      int slot;
      if (control_free_.empty()) {
        slot = int(control_.size());
        control_.emplace_back();
      } else {
        slot = control_free_.back();
        control_free_.pop_back();
      }
      control_[slot] = ControlFrame{n.index, to, i + 1 < copies ? out.body : std::move(out.body), bytes};
      schedule(arrival + i * Nanos(int64_t(rng_.uniform() * double((latency + spec.jitter).count()))),
               EventKind::deliver, slot);
    }
  }
}

std::optional<Nanos> World::heal_time(int from, int to) const {
  Nanos heal{0};
  for (const auto& c : cuts_) {
    if ((c.in_a(from) && c.in_b(to)) || (!c.one_way && c.in_b(from) && c.in_a(to))) {
      const auto& until = scenario_.faults[c.fault].until;
      if (!until) return std::nullopt;
      heal = std::max(heal, *until);
    }
  }
  return heal;
}

void World::send_data(DataFrame f) {
  summary_.frames++;
  if (blocked(f.from, f.to)) {
    // TCP holds the frame and retransmits it until the link heals; a cut that never heals
    // loses it with the connection.
    const auto heal = heal_time(f.from, f.to);
    if (!heal) {
      summary_.frames_lost++;
      return;
    }
    const int slot = data_slot();
    data_[slot] = std::move(f);
    schedule(*heal + kRetransmit, EventKind::deliver_data, slot);
    return;
  }
  const LinkSpec spec = link_spec(f.from, f.to);
  LinkState& link = links_[link_key(f.from, f.to, Transport::Lane::data)];
  link.free = std::max(now_, link.free) + Nanos(int64_t(double(f.bytes) / spec.bandwidth * 1e9));
  const Nanos latency = spec.latency;
  const Nanos jitter = Nanos(int64_t((rng_.uniform() * 2 - 1) * double(spec.jitter.count())));
  Nanos arrival = link.free + std::max(Nanos(0), latency + jitter);
  for (int tries = 0; tries < 8 && rng_.chance(spec.loss); tries++) arrival += kRetransmit;
  arrival = std::max(arrival, link.last_arrival);  // TCP: in order
  link.last_arrival = arrival;
  const int slot = data_slot();
  data_[slot] = std::move(f);
  schedule(arrival, EventKind::deliver_data, slot);
}

int World::data_slot() {
  if (data_free_.empty()) {
    data_.emplace_back();
    return int(data_.size()) - 1;
  }
  const int slot = data_free_.back();
  data_free_.pop_back();
  return slot;
}

// --- faults --------------------------------------------------------------------------------------

namespace {

std::vector<int> pick(World& w, int count, const std::vector<int>& listed) {
  if (!listed.empty()) return listed;
  std::vector<int> out;
  for (int i = 0; i < count; i++) {
    const int n = w.live_random();
    if (n < 0) break;
    out.push_back(n);
    w.nodes_[n]->life = SimNode::Life::crashed;  // not picked twice; restored by the caller
  }
  for (int n : out) w.nodes_[n]->life = SimNode::Life::up;
  return out;
}

}  // namespace

static void apply_fault(World& w, int index) {
  const Fault& f = w.scenario_.faults[index];
  w.trace("fault", index, 0, f.where);
  switch (f.kind) {
    case Fault::Kind::crash:
      for (int n : pick(w, f.count, f.nodes)) w.crash(*w.nodes_[n], SimNode::Life::crashed);
      break;
    case Fault::Kind::leave:
      for (int n : pick(w, f.count, f.nodes)) {
        SimNode& node = *w.nodes_[n];
        if (node.life != SimNode::Life::up) continue;
        node.mesh->leave(w.local_time(node));
        w.flush(node);
        w.crash(node, SimNode::Life::left);
      }
      break;
    case Fault::Kind::restart:
      for (std::size_t n = 0; n < w.nodes_.size(); n++) {
        const bool listed = std::count(f.nodes.begin(), f.nodes.end(), int(n)) > 0;
        SimNode& node = *w.nodes_[n];
        if (f.crashed ? node.life != SimNode::Life::crashed || node.instance == 0 : !listed) continue;
        w.crash(node, SimNode::Life::crashed);
        w.start_node(node, true);
      }
      break;
    case Fault::Kind::join:
      for (int i = 0; i < f.count; i++) w.start_node(*w.nodes_[w.add_node(f.profile)], true);
      break;
    case Fault::Kind::partition: {
      Cut c;
      c.fault = index;
      c.a.assign(w.nodes_.size(), 0);
      c.b.assign(w.nodes_.size(), 0);
      for (int n : f.side_a) c.a[n] = 1;
      for (int n : f.side_b) c.b[n] = 1;
      c.b_is_rest = f.b_is_rest;
      c.one_way = f.one_way;
      w.cuts_.push_back(std::move(c));
      break;
    }
    case Fault::Kind::loss:
    case Fault::Kind::latency:
    case Fault::Kind::bandwidth:
      w.link_faults_.push_back(index);
      break;
    case Fault::Kind::skew:
      for (int n : f.nodes) {
        if (f.over == Nanos(0)) {
          w.nodes_[n]->skew += f.duration;
        } else {
          w.nodes_[n]->drifts.push_back(index);
        }
      }
      break;
  }
  w.disturbed();
}

static void end_fault(World& w, int index) {
  const Fault& f = w.scenario_.faults[index];
  w.trace("fault_end", index, 0, f.where);
  switch (f.kind) {
    case Fault::Kind::partition:
      std::erase_if(w.cuts_, [&](const Cut& c) { return c.fault == index; });
      break;
    case Fault::Kind::loss:
    case Fault::Kind::latency:
    case Fault::Kind::bandwidth:
      std::erase(w.link_faults_, index);
      break;
    default:
      break;
  }
  w.disturbed();
}

// --- the run -------------------------------------------------------------------------------------

Summary World::run() {
  const auto wall0 = std::chrono::steady_clock::now();
  for (const auto& g : scenario_.nodes) {
    for (int i = 0; i < g.count; i++) add_node(g.profile);
  }
  for (auto& n : nodes_) start_node(*n, n->index != 0);  // everyone joins through the first
  formed_or_started_ = true;

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
  const Workload& w = scenario_.workload;
  for (int i = 0; i < w.sessions; i++) {
    SimSession s;
    s.index = i;
    s.seed = mix(seed_, 0x5e55 + uint64_t(i));
    Rng prompt{s.seed};
    for (int t = 0; t < w.prompt_tokens; t++) s.prompt.push_back(int(prompt.below(uint64_t(model_.config.vocab_size))));
    // The undisturbed answer, computed as the last stage would with every token in one go.
    uint64_t context = 0, rng = s.seed;
    for (int t : s.prompt) context = fold(context, t);
    for (int t = 0; t < w.gen_tokens; t++) {
      const int token = sample(rng, context);
      s.reference.push_back(token);
      context = fold(context, token);
    }
    sessions_.push_back(std::move(s));
    schedule(w.first + i * w.every, EventKind::arrival, i);
  }
  schedule(Nanos(0), EventKind::check);
  // Long enough to see the mesh settle after the last fault; then the sessions still running
  // get `drain` to end.
  end_ = std::max(scenario_.duration, last_fault + scenario_.expect.converge_within);
  hard_end_ = end_ + scenario_.expect.drain;

  auto sessions_open = [&] {
    for (const auto& s : sessions_) {
      if (s.outcome == SimSession::Outcome::waiting || s.outcome == SimSession::Outcome::running) return true;
    }
    return false;
  };
  bool open = true;
  while (!queue_.empty()) {
    const Event e = queue_.top();
    if (Nanos(e.t) > hard_end_) break;
    if (Nanos(e.t) > end_ && e.kind == EventKind::check && !(open = sessions_open())) break;
    queue_.pop();
    now_ = Nanos(e.t);
    events_++;
    switch (e.kind) {
      case EventKind::tick: {
        SimNode& n = *nodes_[e.a];
        if (n.generation != e.b || !up(e.a)) break;
        n.mesh->tick(local_time(n));
        react(n);
        schedule(now_ + kMeshTick, EventKind::tick, e.a, e.b);
        break;
      }
      case EventKind::deliver: {
        ControlFrame f = std::move(control_[e.a]);
        control_free_.push_back(e.a);
        if (!up(f.to) || blocked(f.from, f.to)) {
          summary_.frames_lost++;
          break;
        }
        SimNode& n = *nodes_[f.to];
        if (auto* g = std::get_if<wire::Gossip>(&f.body)) {
          trace("gossip", f.from, f.to, std::to_string(int(g->kind)));
          n.mesh->receive(*g, local_time(n));
        } else if (auto* p = std::get_if<wire::PlanAnnounce>(&f.body)) {
          trace("plan_frame", f.from, f.to, std::to_string(p->version));
          n.mesh->receive(*p, local_time(n));
        }
        react(n);
        break;
      }
      case EventKind::deliver_data:
        deliver_data(e.a);
        break;
      case EventKind::compute_done:
        compute_done(e.a, e.b);
        break;
      case EventKind::load_done: {
        SimNode& n = *nodes_[e.a];
        if (n.generation == e.b && up(e.a)) load_done(n, e.c);
        break;
      }
      case EventKind::fault:
        apply_fault(*this, e.a);
        break;
      case EventKind::fault_end:
        end_fault(*this, e.a);
        break;
      case EventKind::arrival:
        session_arrival(sessions_[e.a]);
        break;
      case EventKind::ask_route:
        ask_route(sessions_[e.a], int(e.b));
        break;
      case EventKind::reroute_timeout:
        reroute_timeout(sessions_[e.a], int(e.b));
        break;
      case EventKind::stall_check:
        stall_check(sessions_[e.a]);
        break;
      case EventKind::connection_lost: {
        SimNode& n = *nodes_[e.a];
        if (!up(n.index) || n.generation != e.b) break;
        trace("connection_lost", n.index, int64_t(e.c));
        n.mesh->connection_lost(nodes_[e.c]->address, local_time(n));
        react(n);
        break;
      }
      case EventKind::check:
        check_periodic();
        schedule(now_ + 100ms, EventKind::check);
        break;
    }
  }
  (void)open;
  check_final();

  summary_.seed = seed_;
  summary_.events = events_;
  summary_.sim_seconds = double(now_.count()) / 1e9;
  summary_.nodes = int(nodes_.size());
  summary_.sessions = int(sessions_.size());
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
  summary_.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return summary_;
}

int World::sample(uint64_t& rng, uint64_t context) const {
  Rng r{rng};
  rng = r.next();
  return int(mix(rng, context) % uint64_t(model_.config.vocab_size));
}

Summary simulate(const Scenario& scenario, uint64_t seed, const Options& options) {
  World world(scenario, seed, options);
  return world.run();
}

}  // namespace troupe::sim
