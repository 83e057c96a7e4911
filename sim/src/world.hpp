// The simulator's state and event loop, shared by its parts: world.cpp (events, nodes, links,
// faults), sessions.cpp (the stage and entry side of sessions), checks.cpp (invariants).
#pragma once

#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <tuple>
#include <string>
#include <unordered_map>
#include <vector>

#include "troupe/discovery/mesh.hpp"
#include "troupe/discovery/session.hpp"
#include "troupe/runtime/transport.hpp"
#include "troupe/sim/simulator.hpp"

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
  tick,          // a: node, b: generation
  deliver,       // a: frame slot (control: gossip or plan)
  deliver_data,  // a: data frame slot
  compute_done,  // a: data frame slot holding the work (to = the computing node)
  load_done,     // a: node, b: generation, c: load number
  fault,         // a: fault index
  fault_end,     // a: fault index
  arrival,       // a: session (a client sends it to an entry node)
  ask_route,     // a: session, b: attempt (the session asks its node for a route)
  reroute_timeout,  // a: session, b: attempt
  stall_check,   // a: session
  connection_lost,  // a: node, b: its generation, c: the node whose connection broke
  check,         // invariants
};

struct Event {
  int64_t t;      // ns of simulated time
  uint64_t seq;   // ties: in the order scheduled
  EventKind kind;
  int a = 0;
  uint64_t b = 0, c = 0;
  bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

struct ControlFrame {
  int from = 0, to = 0;
  wire::Body body;
  uint64_t bytes = 0;
};

// A session frame (wire.hpp's SessionStart, Step, Activations, Sampled, Error, SessionEnd),
// carrying what the simulation needs of it; `bytes` is what the real frame would take.
struct DataFrame {
  enum class Kind : uint8_t { start, step, activations, sampled, error, end };
  Kind kind = Kind::start;
  int from = 0, to = 0;
  int session = 0;
  uint32_t epoch = 0;        // the session's attempt id: frames of an earlier route are ignored
  int entry = 0;             // start: the entry node
  int pos = 0, count = 0;
  bool sample = false;       // activations: the last stage samples after the last position
  std::vector<int> tokens;   // start: the prompt so far; step, activations: the positions' tokens
  std::vector<wire::RouteStage> route;
  uint64_t rng = 0;          // start: the sampler's state; sampled: after drawing
  int token = 0;
  int code = 0;
  std::string message;
  uint64_t bytes = 0;
};

// A session's state on one stage (stage_actor.cpp): the KV cache stands as a hash of the tokens.
struct StageSession {
  int entry = 0;
  std::vector<wire::RouteStage> route;
  std::size_t index = 0;
  int accepted = 0;   // positions taken in (some may wait for the device)
  int positions = 0;  // positions run
  uint64_t context = 0;
  uint64_t rng = 0;
  std::vector<std::string> peers;  // its entry and the other stages
};

struct SimNode {
  int index = 0;
  std::string name, address;
  const DeviceProfile* profile = nullptr;
  enum class Life : uint8_t { up, crashed, left } life = Life::up;
  uint64_t instance = 0;
  uint64_t generation = 0;  // bumped at every crash, leave and restart: older events are void
  Nanos skew{0};            // the clock's jumps so far
  std::vector<int> drifts;  // skew faults that drift its clock (scenario fault indices)
  std::unique_ptr<discovery::Mesh> mesh;
  std::optional<LayerRange> asked, loaded, loading;
  uint64_t loads = 0;
  Nanos load_free{0};
  std::deque<int> work;  // batches waiting for the device (data frame slots), in arrival order
  bool computing = false;
  std::map<uint64_t, StageSession> stage_sessions;  // by session << 32 | epoch
  discovery::EndedSessions ended;
  std::vector<int> entries;  // sessions that entered here and are running
  discovery::Leadership leadership;
  uint64_t plan_version = 0;
};

struct SimSession {
  int index = 0;
  uint64_t seed = 0;
  std::vector<int> prompt, reference;
  enum class Outcome : uint8_t { waiting, running, completed, failed } outcome = Outcome::waiting;
  int entry = -1;
  uint64_t entry_generation = 0;
  int tries = 0;
  // The session's protocol on its entry, as session_actor.cpp hosts it (none while waiting for
  // an entry), and the node's record of it (node_actor.cpp).
  std::optional<discovery::EntrySession> protocol;
  std::vector<std::string> stages;  // node side: the addresses it watches for losses
  bool waiting_route = false;
  std::vector<int> generated;
  std::string error;
  Nanos last_activity{0};
  bool stall_check_pending = false;
};

// A partition in force.
struct Cut {
  int fault = 0;
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
  void start_node(SimNode& n, bool joining);
  void crash(SimNode& n, SimNode::Life life);
  void react(SimNode& n);
  void flush(SimNode& n);
  void send_data(DataFrame frame);
  bool blocked(int from, int to) const;
  LinkSpec link_spec(int from, int to) const;
  std::optional<Nanos> heal_time(int from, int to) const;  // none: never
  bool up(int n) const { return nodes_[n]->life == SimNode::Life::up; }
  int live_random(int except = -1);
  const discovery::MeshConfig& mesh_config() const { return mesh_config_; }
  int context() const { return scenario_.workload.prompt_tokens + scenario_.workload.gen_tokens; }

  // --- sessions.cpp ----------------------------------------------------------------------------
  void session_arrival(SimSession& s);
  void deliver_data(int slot);
  int data_slot();
  void compute_done(int slot, uint64_t generation);
  void stage_peer_lost(SimNode& n, const std::string& address);
  void stage_hold(SimNode& n, std::optional<LayerRange> want);
  void load_done(SimNode& n, uint64_t load);
  void entry_peer_lost(SimSession& s, const std::string& address, const std::string& name);
  void hand_routes(SimNode& n);
  void ask_route(SimSession& s, int attempt);
  void reroute_timeout(SimSession& s, int attempt);
  void stall_check(SimSession& s);
  void entry_lost(SimNode& n);  // the entry's process is gone: its clients try elsewhere
  void entry_receive(SimSession& s, const DataFrame& f);
  void stage_receive(SimNode& n, DataFrame& f);
  void stage_error(SimNode& n, const DataFrame& f, int code, const std::string& message);
  void compute(SimNode& n, const DataFrame& f);
  void start_work(SimNode& n);
  void act(SimSession& s, discovery::EntrySession::Actions actions);
  void route_handed(SimSession& s, const std::vector<discovery::StageHolder>& route, const std::string& problem);
  void close_session(SimSession& s, SimSession::Outcome outcome);
  void client_retry(SimSession& s, const std::string& why);
  void activity(SimSession& s);

  // --- checks.cpp ------------------------------------------------------------------------------
  void check_leadership(SimNode& n);
  void check_periodic();
  void check_session_end(SimSession& s);
  void check_final();
  void disturbed();
  bool coverable_from(int node) const;
  void violation(const std::string& what);

  // The stand-in model: deterministic token ids from the session's seed and its context.
  static uint64_t fold(uint64_t context, int token) { return mix(context, uint64_t(uint32_t(token))); }
  int sample(uint64_t& rng, uint64_t context) const;

  const Scenario& scenario_;
  Options options_;
  uint64_t seed_;
  Rng rng_;
  ModelPrice model_;
  discovery::MeshConfig mesh_config_;
  Nanos now_{0}, end_{0}, hard_end_{0};
  uint64_t seq_ = 0, events_ = 0, hash_ = 1469598103934665603ull;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  std::unordered_map<std::string, int> by_address_;
  std::vector<SimSession> sessions_;
  std::vector<ControlFrame> control_;
  std::vector<int> control_free_;
  std::vector<DataFrame> data_;
  std::vector<int> data_free_;
  std::unordered_map<uint64_t, LinkState> links_;
  std::vector<Cut> cuts_;
  std::vector<int> link_faults_;  // loss, latency and bandwidth faults in force, in start order
  std::FILE* trace_file_ = nullptr;
  Summary summary_;
  bool formed_or_started_ = false;  // the scenario's first nodes have started

  // Invariant state (checks.cpp).
  std::map<std::pair<uint64_t, std::string>, uint64_t> ballot_holder_;  // ballot -> instance
  std::map<std::tuple<uint64_t, int, int>, Nanos> split_since_;
  Nanos last_disturbance_{0};
  bool disturbance_open_ = false;
  bool formed_ = false;  // the first agreement has been seen
  std::set<uint64_t> incomplete_reported_;
  std::optional<Nanos> agreed_since_;
  int violations_total_ = 0;
};

}  // namespace troupe::sim
