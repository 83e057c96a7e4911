// The session protocol's rules, as plain state machines and functions: one completion entering
// through a node, passing the stages of a route, re-routed when a stage is lost or moves.
// The actors host them over ZeroMQ and the system clock (actors/src/session_actor.cpp,
// stage_actor.cpp, node_actor.cpp), which the simulator runs unchanged over virtual links and
// a virtual clock. The hosts send the frames, keep the timers, run the model
// and stream the text; what to send where, and when to give up, is decided here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "troupe/discovery/mesh.hpp"

namespace troupe::discovery {

// How long a session waits for the next token before it gives up on the mesh.
inline constexpr Millis kSessionStallTimeout{120'000};
// After this long without a token the entry asks every stage whether it still holds the session
// (session_probe): a stage alive at its address that lost it (restarted unnoticed, reclaimed it)
// answers kMoved and the entry re-routes at once, rather than after kSessionStallTimeout.
inline constexpr Millis kProbeAfter{3'000};
// How long a session waits for a new route (a re-plan, stages loading) before it fails.
inline constexpr Millis kRerouteTimeout{60'000};
// After a stage said it moved, the entry's view of the mesh may still show the old stage for a
// moment: the session asks for a new route this much later, so as not to bounce off it again.
inline constexpr Millis kMovedWait{100};
// A session whose layers no live member can cover waits this long for one that can before it
// fails: a stage restarted at its address (kill -9, and a service manager starts it again) is a
// new member that listens, answers a probe and loads its layers within a few seconds, and the
// answer in flight should go on through it rather than fail.
inline constexpr Millis kCoverGrace{4'000};

// --- the entry node ------------------------------------------------------------------------------

// What an entry node does with a client's request, or with a session that asks for a new route.
enum class Admission {
  serve,         // a live route is there: take it
  wait,          // none is live, but the members could cover the model: wait for a re-plan
  cannot_cover,  // nothing to wait for (too few members, a pinned stage gone): refuse
  busy,          // wire::kMaxSessions sessions already run through this node
};
Admission admit(const Mesh& mesh, std::size_t running_sessions);

// Whether a member change takes the member away from the sessions that use it: it was declared
// dead, left, or was replaced by a later instance at its address (a restart: the new process
// knows none of the earlier one's sessions, and drops their frames). Then stages forget the
// sessions that depend on it and entries re-route those whose route it is on. A suspicion alone
// moves nothing: a suspect keeps its place in the plan, and under loss most suspicions are
// refuted, while a re-route costs a replay; a stage that really stopped answering is declared
// dead within the suspicion timeout, and the stall timeout is the last resort.
bool member_gone(const MemberChange& change);

// One session on its entry node: run.c's generation loop with the mesh as the forward pass. The
// host owns the generator (it turns sampled tokens into text and decides when the answer ends);
// this keeps the route, the tokens fed so far and the last stage's sampler state, so that a new
// route rebuilds the KV caches by replaying the tokens and the sampler resumes where it was: the
// answer stays what an undisturbed run would have written.
//
// A re-route replays only what the new route lacks. The stages of the route left keep the
// session's state until the new route is known (or the session ends); those that are on the new
// route with layers overlapping those they held, and were not lost, are *kept*: they keep every
// position but the last one fed, and the new stages run those positions from the activations of
// the stage before them (its log of what it sent) or, first, from the tokens. A kept stage whose
// layers moved fills only the layers it gained (resume_plan.hpp). A stage lost, replaced or
// moved away from every layer it held is never kept. A route that never answered leaves nothing
// to keep, but for the stages a resumed start kept: the next route replays the rest.
//
// Every call returns the actions for the host to carry out, in order. Frames of an earlier
// route are told apart by the attempt number (the actors keep it in the session id's bits, the
// simulator in its frames' epoch) and ignored: see expects().
class EntrySession {
 public:
  // Frames go to the stages of one attempt: `attempt` names it.
  // Start (again) on `route`: every token so far, one batch, with the sampler where it was. A
  // resumed start names the attempt whose state the stages at `kept` (indices in `route`) hold,
  // and the positions they keep (`resume_pos`); resume_attempt -1: all start afresh.
  struct Start {
    std::string to;
    int attempt = 0;
    std::vector<wire::RouteStage> route;
    std::vector<int> tokens;
    uint64_t rng_state = 0;
    int resume_attempt = -1;
    int resume_pos = 0;
    std::vector<int> kept;
    std::vector<int> fill;  // kept stages whose layers moved (resume_plan.hpp)
  };
  struct Step {  // the token at `pos` goes to the first stage
    std::string to;
    int attempt = 0;
    int pos = 0;
    int token = 0;
  };
  // Does `to` still hold the session? The entry waits for the token sampled after `pos` positions.
  struct Probe {
    std::string to;
    int attempt = 0;
    int pos = 0;
  };
  struct End {  // a stage may forget the session
    std::string to;
    int attempt = 0;
    std::string reason;
  };
  // Ask the node for a live route (kMovedWait later when `after_move`); fail with
  // reroute_timeout(attempt) when none came within kRerouteTimeout.
  struct AskRoute {
    bool after_move = false;
    int attempt = 0;
  };
  struct Fail {  // tell the client, and close the session
    int code = 1;
    std::string message;
  };
  using Action = std::variant<Start, Step, Probe, End, AskRoute, Fail>;
  using Actions = std::vector<Action>;

  // `input`: the prompt's tokens, as the first stage embeds them; `seed`: the sampler's.
  EntrySession(std::vector<int> input, uint64_t seed);

  // The first route, as the node handed it (empty: wait for one).
  Actions begin(std::vector<wire::RouteStage> route);
  // Whether a frame of `attempt` is for the route in use (else it is ignored).
  bool expects(int attempt) const { return !over_ && !rerouting_ && attempt == attempt_; }
  // The last stage sampled a token after `pos` positions, leaving its sampler at `rng_state`.
  // Out of order: a Fail. Otherwise nothing: the host hands the token to its generator, then
  // calls next() with the token to feed, or finish().
  Actions sampled(int pos, uint64_t rng_state);
  // Whether a token sampled after `pos` positions was taken already (a copy: the stages send a
  // decode step's frames on two connections).
  bool seen(int pos) const { return pos < int(fed_.size()); }
  Actions next(int token);
  Actions finish();  // the answer is complete
  // An error frame from the stage at `from` on the current route: kMoved re-routes (and that
  // stage, which moved or does not hold the session, is not kept), kPeerGone and kRelayered re-route (that
  // stage keeps the session's state), anything else fails.
  Actions error(int code, const std::string& message, const std::string& from);
  // The node saw a member go (member_gone): re-route when it was a stage of the route. A stage
  // lost is not kept on the next route.
  Actions peer_lost(const std::string& address, const std::string& name);
  // The node's answer to AskRoute: a live route, or none and why (nothing to wait for).
  Actions route_found(std::vector<wire::RouteStage> route, const std::string& problem);
  Actions reroute_timeout(int attempt);
  // Nothing heard for kProbeAfter: once a token came back on this route (every stage took its
  // start, so a stage without the session lost it), a Probe to every stage; after
  // kSessionStallTimeout of these without a token, stalled().
  Actions quiet();
  Actions stalled();                            // nothing heard for kSessionStallTimeout
  Actions abandon(const std::string& reason);   // the client went away

  int attempt() const { return attempt_; }
  bool over() const { return over_; }
  bool rerouting() const { return rerouting_; }
  const std::vector<wire::RouteStage>& route() const { return route_; }
  const std::vector<int>& fed() const { return fed_; }
  uint64_t rng_state() const { return rng_state_; }
  const std::string& reroute_reason() const { return reroute_reason_; }  // the last re-route's

 private:
  Actions start_on_route();
  void resume_from_left(Start& start, Actions& out);
  void end_on_stages(Actions& out, const std::string& reason);
  void end_left(Actions& out, const std::string& reason, const std::vector<int>& kept = {});
  Actions reroute(const std::string& why, bool moved);
  Actions fail(int code, const std::string& message);

  std::vector<wire::RouteStage> route_;
  std::vector<int> fed_;  // every token given to the first stage, in position order
  uint64_t rng_state_ = 0;
  int attempt_ = 0;
  bool started_ = false;  // the stages of route_ hold state for the session
  bool answered_ = false;  // a token came back on route_ since its start
  Millis quiet_{0};        // without a token, in quiet() calls of kProbeAfter each
  bool rerouting_ = false;
  bool over_ = false;
  std::string reroute_reason_;
  // The route a re-route left while its stages hold the session's state, and its attempt.
  struct Left {
    std::vector<wire::RouteStage> route;
    int attempt = 0;
  };
  std::optional<Left> left_;
  std::vector<std::string> lost_;  // stages lost since: not kept
  std::vector<int> kept_;          // the stages of route_ its start kept (indices)
};

// --- a stage -------------------------------------------------------------------------------------

// Whether a stage takes a session_start, and its place in the session if it does.
struct StageAdmission {
  int code = 0;     // 0: taken; else the error code for the entry (wire::kMoved: it re-routes)
  std::string why;  // when refused
  std::size_t index = 0;           // its place in the route
  std::string next;                // the next stage's address; empty for the last
  std::vector<std::string> peers;  // the nodes the session depends on: its entry, every stage
  bool taken() const { return code == 0; }
};
// `self`: the stage's address; `held`: the layers it holds (none: nothing); `sessions`: how
// many it serves now; `prompt_tokens`: the start's tokens (only the first stage embeds them);
// `steps`: the session's context.
StageAdmission admit_stage(const std::string& self, const std::optional<LayerRange>& held,
                           int n_layers, std::size_t sessions, const std::string& entry,
                           const std::vector<wire::RouteStage>& route, std::size_t prompt_tokens,
                           int steps);

// Whether the stage at `address` on a resumed start's route keeps the session's state (a start
// without `resume` keeps none).
bool kept_at(const wire::SessionStart& start, const std::string& address);

// Whether a stage's memory budget holds one more session: empty when it does, else why not. The
// plan made room for one full-context session at every stage, so the first is always taken;
// each further one is held to `budget` by what the process holds now (`resident`) and what the
// session would add (`session_bytes`: its KV cache and working buffers). A budget or a resident
// size of 0 (not known, as in the simulator) bounds nothing.
std::string memory_refusal(uint64_t budget, uint64_t resident, uint64_t session_bytes, std::size_t sessions);

// A stage stops serving the sessions that depend on a member gone (member_gone); it keeps their
// state for the entry's next route, which may keep it (EntrySession), unless the entry is the
// member gone: then it forgets them. Their entry may not think the member gone yet — views of the
// mesh differ for a moment, and the entry may even have just chosen a route through it — so the
// stage tells it (wire::kPeerGone, with this text) and the entry re-routes; else the session would
// wait for the stall timeout (found by the simulator).
std::optional<std::string> forget_notice(const std::string& entry, const std::string& gone);

// The sessions a stage was told to end. An end can overtake its session's start: the end comes
// from the entry, the start through the stages before, over other connections. A start for an
// ended session is dropped instead of holding a cache that nothing would free (the simulator
// found stages refusing every session as busy after hundreds of re-routes). Bounded: the oldest
// are forgotten first.
class EndedSessions {
 public:
  explicit EndedSessions(std::size_t capacity = 4096) : capacity_(capacity) {}
  void add(uint64_t id);
  bool contains(uint64_t id) const { return ids_.count(id) > 0; }

 private:
  std::size_t capacity_;
  std::unordered_set<uint64_t> ids_;
  std::deque<uint64_t> order_;
};

// The sessions a stage forgot because their entry was declared gone, with that entry. There was
// nobody to tell then (forget_notice), but a member declared dead may be alive after all (its
// links lost frames for a while, and it refuted its death), and its session would wait for the
// stall timeout and fail (found by the simulator). A frame of such a session arriving later shows
// that it is still being driven: the stage then tells the entry after all (wire::kMoved, with
// orphan_notice's text), once, and the entry re-routes. Bounded: the oldest are forgotten first.
class OrphanedSessions {
 public:
  explicit OrphanedSessions(std::size_t capacity = 4096) : capacity_(capacity) {}
  void add(uint64_t id, const std::string& entry);
  // The entry of `id` when the stage forgot it so; forgets it (one notice per session).
  std::optional<std::string> take(uint64_t id);

 private:
  std::size_t capacity_;
  std::unordered_map<uint64_t, std::optional<std::string>> entries_;  // none: told already
  std::deque<uint64_t> order_;
};
std::string orphan_notice(const std::string& entry);

// Why `count` rows from `pos` cannot go into a session whose next position is `next_pos` and
// whose cache holds `context` positions (empty: they can). `tokens`: they come as token ids
// (a step, for the first stage) rather than activations (for the others).
std::string input_problem(bool first, bool tokens, int next_pos, int pos, int count, int context,
                          int max_batch);

}  // namespace troupe::discovery
