// The stage actor: the layer range this node holds, run for every session that passes through it.
// It loads the range the plan gives the node and releases the one it held; sessions of a
// released range are told their stage moved, and their entries re-route them.
//
// Per session it keeps the model's session state (StageModel::Session: its KV cache), the sampler when it holds the last layer, and where results go. Messages of one
// session arrive in order (each comes over one connection from one sender); the positions they
// carry are checked against the cache all the same, so a confused or hostile sender gets an
// error, never a write outside the cache.
//
// A session belongs to its route: the stage takes its session_start and its steps or activations
// only from the peer before it on the route (the first stage: from the entry), and its end and
// probes only from its entry; frames from anyone else are dropped and counted (drop_frame). It holds at most
// kMaxSessionsPerEntry sessions of another node's entry, and reclaims a session nothing was heard of for
// kSessionIdleTimeout, so that sessions started and never ended (a hostile member, an entry
// that died) cannot keep it busy for good.
//
// Rows that arrive wait for the stage's next pass (stage_batch.cpp), which runs the rows ready
// from all its sessions through its layers as one batch: weights read once for every session
// (discovery/batch_plan.hpp says which rows go first).
//
// A re-routed session resumes (discovery::EntrySession): a stage the new route keeps takes the
// session's state from the route it left (its cache, and the log of the rows it sent on) under
// the new id, back to the positions kept. Before the new next stage's first rows, it sends that
// stage its log of them, so that a stage new to the session runs only its own layers for the
// positions before. A stage that lost a peer of a session other than its entry keeps the
// session's state for the entry's next route, and forgets it when the entry ends it. A stage
// whose layers move keeps what it computed of the layers it still holds (StageModel::carry);
// when the session resumes it fills the layers it gained (discovery/resume_plan.hpp).
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors.hpp"
#include "troupe/actors/stage_limits.hpp"
#include "troupe/discovery/resume_plan.hpp"
#include "troupe/discovery/session.hpp"
#include "troupe/text/sampler.hpp"

namespace troupe::actors {

// The stage actor's state (caf::stateful_actor: destroyed when the actor exits, with the handles
// it holds, its own among them) and its handlers.
class StageState {
 public:
  explicit StageState(StageActor::stateful_pointer<StageState> self) : self_(self) {}
  StageActor::behavior_type behavior(const NodeContext* node);

 private:
  struct Session {
    std::unique_ptr<StageModel::Session> cache;
    std::optional<Sampler> sampler;  // the last stage's
    std::string entry;               // where sampled tokens and errors go; the one that ends it
    std::string previous;            // whose steps (the entry's) or activations it takes
    std::string next;                // the next stage; empty for the last
    std::vector<std::string> peers;  // every node the session depends on
    std::vector<int> prompt;         // the first stage's: the tokens to run before the first step
    int next_pos = 0;                // the position the next input must start at
    std::vector<uint8_t> log;        // the rows computed for the next stage, by position, as sent
    int log_at = -1;                 // the layer boundary of the log's rows (-1: no log)
    LayerRange valid{0, 0};          // the layers whose keys and values hold every position run
    // Layers gained at the front of a resumed session's range, filled from rows of positions
    // [pos, until) before the session goes on (discovery::ResumeWork::on_input).
    struct Fill {
      LayerRange layers;
      int pos = 0;
      int until = 0;
    };
    std::optional<Fill> fill;
    int forward_from = 0;            // rows before it are not sent on: the next stage kept them
    bool detached = false;           // a peer it needs was lost: the entry re-routes it
    bool relayered = false;          // the stage's layers moved: it serves the session only once resumed
    uint64_t seq = 0;
    Clock::time_point heard;         // its last frame or prompt batch
    // Its round trip: when its last sampled row left (awaited: its next has not come yet), and
    // how long the next took the time before.
    Clock::time_point sent_at;
    bool awaited = false;
    std::optional<Clock::time_point::duration> loop;
  };

  // Rows a session's previous stage (or its entry) sent, waiting for a pass.
  struct Pending {
    uint64_t id = 0;
    int pos = 0;
    int count = 0;
    bool sample = false;
    uint64_t upstream_us = 0;
    int token = -1;            // a step's token (count 1); -1: activations
    std::vector<float> rows;   // activations: count rows of dim floats
  };
  // What one session offers a pass: its first pending entry (`pending`) or its prompt's next rows.
  struct Candidate {
    uint64_t id;
    Session* session;
    Pending* pending;  // null: the prompt
  };
  // What a pass took of a candidate: `count` rows of positions pos.. .
  struct Taken {
    uint64_t id;
    Session* session;
    int pos;
    int count;
    bool sample;
    uint64_t upstream_us;
  };

  // The handlers.
  void on_init(TransportActor transport, NodeActor node_actor);
  void on_wire(const Origin& from, wire::Message& message);
  void on_message(const Origin& from, wire::Message& message);
  void on_session_start(const Origin& from, uint64_t id, wire::SessionStart& m);
  void on_step(const Origin& from, uint64_t id, const wire::Step& m);
  void on_activations(const Origin& from, uint64_t id, const wire::Activations& m);
  void on_session_end(const Origin& from, uint64_t id);
  void on_session_probe(const Origin& from, uint64_t id, const wire::SessionProbe& m);
  void on_pass(uint64_t ticket);
  void on_load(int begin, int end);
  void on_peer_lost(const std::string& address);
  void on_tick();

  // What the stage sends leaves once its device is done with the work so far
  // (discovery::SimHook::device_busy: at once on a real device).
  template <class Handle, class... Ts>
  void send_when_done(const Handle& to, Ts&&... xs);
  void send_to_node(const std::string& address, uint64_t id, uint64_t seq, wire::Body body);
  void fail(uint64_t id, const std::string& entry, const std::string& why);
  // After the layers on `count` rows at `pos` (`rows`; `logits`: the last one's, where sampled),
  // computed in `compute_us` (with the stages before): on to the next stage, or the token sampled.
  void emit(uint64_t id, Session& s, int pos, int count, bool sample, const float* rows, float* logits,
            uint64_t compute_us);
  uint64_t charge(int count, Clock::time_point t0);
  void check_input(const Session& s, bool tokens, int pos, int count) const;
  // The session `id` when `from` may send it `what` (its entry, or the peer before this stage);
  // else the frame is dropped and counted, and nothing is returned.
  Session* session_from(const Origin& from, uint64_t id, const char* what, bool from_entry);
  bool start_from_route(const Origin& from, uint64_t id, const wire::SessionStart& m);
  bool open_session(uint64_t id, const wire::SessionStart& m);
  std::optional<discovery::ResumeWork> resume_session(uint64_t id, const wire::SessionStart& m,
                                                      const discovery::StageAdmission& a);
  void begin_on_route(uint64_t id, Session& s, wire::SessionStart& m, const discovery::StageAdmission& a,
                      const discovery::ResumeWork* resumed);
  void send_log(uint64_t id, Session& s, int until);
  void run_on_log(Session& s, int until, LayerRange layers);
  int take_fill(Session& s, int pos, int count);
  void run_rows(uint64_t id, Session& s, int pos, int count, bool sample, Clock::time_point t0, uint64_t upstream_us);
  // The batching (stage_batch.cpp).
  void queue(Session& s, bool tokens, Pending p);
  void schedule_pass();
  std::vector<Candidate> candidates();
  int prompt_left(const Session& s) const;
  void run_alone(const Candidate& c);
  std::optional<Taken> take(const Candidate& c, int count, float* x);
  void finish_pass(const std::vector<Taken>& taken, Clock::time_point t0);
  std::optional<Clock::time_point> rows_due_soon() const;
  void carry_sessions();
  std::size_t row_bytes() const;
  std::size_t sessions_of(const std::string& entry) const;
  // Why this node's memory budget cannot hold one more session of `steps` positions (empty: it can).
  std::string memory_refusal(int steps) const;
  void unknown_session(const Origin& from, uint64_t id, const char* what);
  void added_session();
  void hold(std::optional<LayerRange> want);
  void report();
  bool first() const { return layers_ && layers_->begin == 0; }
  bool last() const { return layers_ && layers_->end == node_->config->n_layers; }
  std::string where() const;

  StageActor::stateful_pointer<StageState> self_;
  const NodeContext* node_ = nullptr;
  Routes routes_;
  std::shared_ptr<const StageModel> model_;  // the weights of layers_
  std::optional<LayerRange> layers_;
  std::unordered_map<uint64_t, Session> sessions_;
  discovery::EndedSessions ended_;  // a start that comes after its session's end is dropped
  discovery::OrphanedSessions orphaned_;  // forgotten when their entry was declared gone
  std::deque<Pending> pending_;     // in the order they came
  bool pass_due_ = false;           // a pass_atom is on its way
  uint64_t pass_ticket_ = 0;        // the one that runs
  bool waited_ = false;             // the pass on its way waited for rows due soon
  Clock::time_point::duration last_pass_{};     // how long the last pass took
  std::vector<float> x_;            // the rows of the pass being run
  std::vector<float> logits_;       // the logits of its rows that sample
  bool ticking_ = false;            // a look for idle sessions is scheduled
};

// Spawned by NodeActors (on a thread of its own on a device: system.spawn<caf::detached>).
StageActor::behavior_type stage_actor(StageActor::stateful_pointer<StageState> self, const NodeContext* node);

}  // namespace troupe::actors
