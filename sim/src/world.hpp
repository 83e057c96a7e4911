// The simulator's state and event loop, shared by its parts: world.cpp (the loop, nodes),
// faults.cpp (each fault kind), links.cpp (the simulated transport and links), clients.cpp (the
// clients and their answers), checks/ (the invariants, one checker a file).
//
// Every node runs troupe's own actors (actors::NodeActors: the node, stage and session actors
// with the mesh and session protocols they host), all of them in one CAF actor system on CAF's
// deterministic test coordinator, whose virtual clock is the simulation's. What is the
// simulator's own: the links (SimTransport, behind troupe::Transport), the devices (a stand-in
// model that takes the device's simulated time), the clients, the faults and the checks.
#pragma once

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "checks/checker.hpp"
#include "troupe/actors/node_actors.hpp"
#include "troupe/actors/node_context.hpp"
#include "troupe/discovery/mesh.hpp"
#include "troupe/discovery/sim_hook.hpp"
#include "troupe/protocol/transport.hpp"
#include "troupe/sim/simulator.hpp"
#include "troupe/text/tokenizer.hpp"

namespace troupe::sim {

using namespace std::chrono_literals;

// splitmix64: the simulator's only source of randomness, seeded from the scenario's seed.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  bool chance(double p) { return p > 0 && uniform() < p; }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
};
uint64_t mix(uint64_t a, uint64_t b);

enum class EventKind : uint8_t {
  start,            // a: node (its process starts), b: 1 when it joins through a live node
  deliver,          // a: frame slot
  task,             // a: node, b: its generation, c: task slot (a task posted to its transport)
  left,             // a: node, b: generation (a graceful leave is over: the process exits)
  fault,            // a: fault index
  fault_end,        // a: fault index
  arrival,          // a: session (its client sends it to an entry node)
  connection_lost,  // a: node, b: its generation, c: the node whose connection broke
  check,            // invariants
  device_free,      // a: node, b: its generation (its device is done: the stage takes the next message)
};

// How a start event's node finds the mesh (its b).
enum Joining : uint64_t { kFirst = 0, kThroughFirst = 1, kThroughLive = 2, kThroughEarlier = 3 };

struct Event {
  int64_t t;      // ns of simulated time
  uint64_t seq;   // ties: in the order scheduled
  EventKind kind;
  int a = 0;
  uint64_t b = 0, c = 0;
  bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

// A frame on a link.
struct FrameInFlight {
  int from = 0, to = 0;
  Transport::Lane lane = Transport::Lane::control;
  Frame bytes;
};

class World;

// A node's network: troupe::Transport over the simulator's links. Everything happens on the
// simulation's one thread: posted tasks run as events at the time they were posted.
class SimTransport final : public Transport {
 public:
  SimTransport(World& world, int node, uint64_t generation) : world_(world), node_(node), generation_(generation) {}
  void start(Events events) override { events_ = std::move(events); }
  void send(const std::string& address, Frame frame, Lane lane) override;
  void reply(const std::string& route, Frame frame) override;
  void post(std::function<void()> task) override;
  void stop() override { stopped_ = true; }
  bool stopped() const { return stopped_; }
  const Events& events() const { return events_; }
  std::array<uint64_t, 4> traffic() const { return traffic_; }
  void count_received(std::size_t bytes) {
    traffic_[2]++;
    traffic_[3] += bytes;
  }

 private:
  World& world_;
  int node_;
  uint64_t generation_;
  Events events_;
  bool stopped_ = false;
  std::array<uint64_t, 4> traffic_{};
};

// A node's clock: the simulation's, with the node's skew.
class SimClock final : public Clock {
 public:
  SimClock(const World& world, int node) : world_(world), node_(node) {}
  time_point now() const override;

 private:
  const World& world_;
  int node_;
};

// Where the simulator reaches into a node's actors (discovery::SimHook): its device's busy
// time, the node actor's mesh after every event (the invariant checks), and the broken variants
// a test turned on. A process that ended is no longer observed, and its device is free.
class NodeHook final : public discovery::SimHook {
 public:
  NodeHook(World& world, int node, uint64_t generation) : world_(world), node_(node), generation_(generation) {}
  Nanos device_busy() const override;
  void observe(const discovery::Mesh& mesh) override;
  bool broken(discovery::BrokenVariant variant) const override;

 private:
  World& world_;
  int node_;
  uint64_t generation_;
};

// One run of a node's process: what its actors read, and the actors. A crash or a leave ends
// it; a restart is a new one (state lost).
struct NodeProcess {
  NodeProcess(World& world, int node, uint64_t generation)
      : clock(world, node), transport(world, node, generation), hook(world, node, generation) {}
  actors::NodeMetrics metrics;
  SimClock clock;
  SeededRandom random{0};  // its session ids: from the run's seed, so that a run replays
  SimTransport transport;
  NodeHook hook;
  actors::NodeContext context;
  std::unique_ptr<actors::NodeActors> actors;
};

// A skew fault that drifts a node's clock: by `by` evenly over `over`, from `from`.
struct Drift {
  Nanos from, by, over;
};

struct SimNode {
  int index = 0;
  std::string name, address;
  const DeviceProfile* profile = nullptr;
  enum class Life : uint8_t { up, crashed, left } life = Life::up;
  uint64_t instance = 0;
  uint64_t generation = 0;  // bumped at every start, crash and leave: older events are void
  Nanos skew{0};            // the clock's jumps so far
  std::vector<Drift> drifts;  // skew faults that drift its clock
  std::unique_ptr<NodeProcess> process;
  const discovery::Mesh* mesh = nullptr;  // the node actor's, as it last reported it
  Nanos device_free{0};     // the device is busy with compute or a load until then
  caf::resumable* stage_job = nullptr;  // the stage actor, as the coordinator's job
  bool stage_parked = false;  // held out of the coordinator's jobs while the device is busy
  discovery::Leadership leadership;
  uint64_t plan_version = 0;
};

struct SimSession {
  int index = 0;
  wire::GenerateRequest request;
  std::string reference;  // the answer of one machine running the whole model
  enum class Outcome : uint8_t { waiting, running, completed, failed } outcome = Outcome::waiting;
  int entry = -1;
  int tries = 0;
  std::string text;      // what the client has received on this try
  bool answered = false;  // anything came back on this try (a refusal comes alone)
  std::string error;
};

// A partition in force.
struct Cut {
  int fault = 0;                  // its index in the scenario's faults
  std::optional<Nanos> heal_at;  // none: never
  std::vector<char> a, b;  // by node index; nodes beyond the end: in b when b_is_rest
  bool b_is_rest = false, one_way = false;
  bool in_a(int n) const { return n < int(a.size()) && a[n]; }
  bool in_b(int n) const { return b_is_rest ? !in_a(n) : n < int(b.size()) && b[n]; }
};

// A link's state per direction and lane (troupe::Transport::Lane): each lane is a connection
// of its own, in order, so mesh frames do not queue behind session frames. Both lanes get the
// link's whole bandwidth: the mesh's frames are small beside activations.
inline uint64_t link_key(int from, int to, Transport::Lane lane) {
  return uint64_t(lane == Transport::Lane::control) << 63 | uint64_t(uint32_t(from)) << 32 | uint32_t(to);
}

// A loss, latency or bandwidth fault in force: how it changes the links it hits.
struct LinkFault {
  int fault = 0;            // its index in the scenario's faults
  std::vector<int> nodes;   // only links to or from these; none: every link
  std::function<void(LinkSpec&)> change;
};

struct LinkState {
  Nanos free{0};          // the sender's side is busy sending until then
  Nanos last_arrival{0};  // frames stay in order unless reordered
};

class World {
 public:
  World(const Scenario& scenario, uint64_t seed, const Options& options);
  ~World();
  Summary run();

  // --- world.cpp -------------------------------------------------------------------------------
  void schedule(Nanos at, EventKind kind, int a = 0, uint64_t b = 0, uint64_t c = 0);
  discovery::TimePoint local_time(const SimNode& n) const;
  void trace(const char* what, int64_t a, int64_t b, const std::string& text = {});
  int add_node(const std::string& profile);
  void start_node(SimNode& n, int via);  // via: the node it joins through (-1: none)
  void crash(SimNode& n, SimNode::Life life);
  void observed(SimNode& n, const discovery::Mesh& mesh);
  void run_actors();
  void unpark_stage(SimNode& n);
  bool up(int n) const { return nodes_[n]->life == SimNode::Life::up; }
  int live_random(int except = -1);
  int join_through(int node);
  void start_soon(int node, Joining joining);  // a start event within a mesh tick from now
  int join_via(int node, Joining joining);      // the node it joins through; -1: none
  Nanos now() const { return now_; }

  // The run's steps.
  Nanos schedule_faults();  // returns the time of the last fault or fault end
  bool step();              // handles the next timer or event; false: the run is over
  void handle(const Event& e);
  bool sessions_open() const;
  Summary summarize(std::chrono::steady_clock::time_point wall_start);
  void count_stage_work(const NodeProcess& p);  // into summary_, once per process

  // --- faults.cpp ------------------------------------------------------------------------------
  void fault_starts(int index);
  void fault_ends(int index);

  // --- links.cpp -------------------------------------------------------------------------------
  void send_frame(int from, const std::string& address, Frame frame, Transport::Lane lane);
  void post(int node, uint64_t generation, std::function<void()> task);
  void deliver(int slot);
  void run_task(int node, uint64_t generation, int slot);
  bool blocked(int from, int to) const;
  LinkSpec link_spec(int from, int to) const;
  std::optional<Nanos> heal_time(int from, int to) const;  // none: never
  void connections_lost(const SimNode& crashed);

  // --- clients.cpp -----------------------------------------------------------------------------
  void make_sessions();
  void session_arrival(SimSession& s);
  void client_reply(const std::string& route, Frame frame);
  void client_retry(SimSession& s, const std::string& why);
  void entry_lost(SimNode& n);  // the entry's process is gone: its clients try elsewhere
  void close_session(SimSession& s, SimSession::Outcome outcome);

  // --- checks/checker.cpp: the checkers' hooks, run in the checkers' order --------------------
  void check_leadership(SimNode& n);  // after the node actor's every event: Checker::node_reported
  void check_periodic();
  void check_session_end(SimSession& s);
  void check_final();
  void disturbed();  // a fault began or ended
  void violation(const std::string& what);
  // What the checkers ask of the world.
  bool coverable_from(int node) const;  // the live nodes `node` reaches (-1: all) could cover the model
  const wire::PlanAnnounce* agreed_plan() const;  // the plan every live node follows, if they agree

  const Scenario& scenario_;
  Options options_;
  uint64_t seed_;
  Rng rng_;
  ModelPrice model_;
  Tokenizer tokenizer_;
  discovery::MeshConfig mesh_config_;
  Nanos now_{0}, end_{0}, hard_end_{0};
  uint64_t seq_ = 0, events_ = 0, hash_ = 1469598103934665603ull;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  std::unordered_map<std::string, int> by_address_;
  std::vector<SimSession> sessions_;
  std::vector<FrameInFlight> frames_;
  std::vector<int> frames_free_;
  std::vector<std::function<void()>> tasks_;
  std::vector<int> tasks_free_;
  std::unordered_map<uint64_t, LinkState> links_;
  std::vector<Cut> cuts_;
  std::vector<LinkFault> link_faults_;  // in start order: the later wins
  std::FILE* trace_file_ = nullptr;
  Summary summary_;

  // The actors' system, on the test coordinator; its clock is the simulation's (caf_epoch_ +
  // now_). Processes that ended wait in graveyard_ until their actors have run their exits.
  caf::actor_system_config caf_config_;
  std::unique_ptr<caf::actor_system> system_;
  caf::scheduler::test_coordinator* scheduler_ = nullptr;
  caf::actor_clock::time_point caf_epoch_;
  std::vector<std::unique_ptr<NodeProcess>> graveyard_;
  std::unordered_map<caf::resumable*, int> stage_jobs_;  // the live stages' jobs -> node

  // The invariants (checks/), each with its own state.
  std::vector<std::unique_ptr<Checker>> checkers_ = make_checkers(*this);
  int violations_total_ = 0;
};

}  // namespace troupe::sim
