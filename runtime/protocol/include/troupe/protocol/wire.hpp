// The wire protocol between troupe nodes and their clients (docs/protocol.md).
//
// Every frame is one msgpack array: the envelope [magic, version, type, session, seq, payload],
// where payload is an array of the message's fields in a fixed order (new fields are appended,
// and a reader ignores fields it does not know). Activations travel as a msgpack bin of raw
// little-endian floats (f32, or f16 as an option), never as text. Token ids travel as a bin of
// little-endian int32. Each message's fields (their order, msgpack kinds, limits and meanings)
// are declared once, in src/wire_schema.hpp: the encoder, the decoder and docs/protocol.md's
// message tables are derived from those lists.
//
// Decoding takes untrusted bytes: anything malformed, oversized, of another protocol version or
// outside the limits below throws InputError with a message that says what was wrong; nothing
// crashes, and no allocation is larger than the frame's own size allows.
//
// Frames carry no secrets and assume nothing about the link: a later issue authenticates and
// encrypts the connections under them (ZeroMQ CURVE with a shared mesh key) without changing them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "troupe/model/model.hpp"
#include "troupe/text/completion.hpp"
#include "troupe/text/generate.hpp"

namespace troupe::wire {

inline constexpr uint32_t kMagic = 0x54525550;  // "TRUP"
// Bumped on any change a node of the previous version would misread; frames of another version
// are dropped (with a log line) rather than guessed at.
inline constexpr uint32_t kProtocolVersion = 2;

// Hard limits. A frame over kMaxFrameBytes is refused before it is parsed (ZeroMQ drops the
// connection that sends one).
inline constexpr std::size_t kMaxFrameBytes = std::size_t(16) << 20;
inline constexpr int kMaxSessions = 64;          // in flight per node, as entry or as stage
inline constexpr std::size_t kMaxPeers = 256;     // member updates in one gossip, members in a status
inline constexpr std::size_t kMaxRouteStages = 256;
inline constexpr std::size_t kMaxNameBytes = 256;       // names, addresses, model fingerprints
inline constexpr std::size_t kMaxTextBytes = 1 << 20;   // prompts, text pieces, error messages
inline constexpr int kMaxPositions = 1 << 20;           // positions, steps, prompt tokens
inline constexpr int kMaxActivationRows = 1024;         // positions in one activations frame

enum class MessageType : uint8_t {
  // Between nodes. (1 was version 1's hello, replaced by gossip.)
  session_start = 2,  // a session's settings (and, to the first stage, its prompt)
  step = 3,           // entry -> first stage: the token to run at a position
  activations = 4,    // stage -> next stage: hidden states of `count` positions
  sampled = 5,        // last stage -> entry: the token sampled after a position
  session_end = 6,    // entry -> stages: drop the session's state
  error = 7,          // a session failed (stage -> entry, entry -> client)
  gossip = 8,         // membership (SWIM probes, acks, state exchange) with the sender's term
  plan = 9,           // coordinator -> members: the versioned stage plan
  session_probe = 10, // entry -> stages: do you still hold the session? (kMoved error if not)
  // Between a client and the node it entered through.
  generate = 16,      // client -> entry: a completion
  text = 17,          // entry -> client: printable text, as it comes
  done = 18,          // entry -> client: the completion ended; statistics
  status_request = 19,
  status = 20,
};
const char* type_name(MessageType type);

// What a member says about itself; spread by gossip (discovery/membership.hpp).
struct MemberInfo {
  std::string name;
  std::string address;        // host:port of its ROUTER socket; how the mesh names it
  uint64_t instance = 0;      // larger for a later start of the same address: a restart
  std::string model;          // identity of its model file; members of other models are ignored
  int model_layers = 0;
  uint64_t mem_budget = 0;    // bytes the whole process may hold
  double throughput = 0;      // GB/s its kernels read weights at (self-benchmark at start)
  int cores = 0;
  std::string arch;
  std::optional<LayerRange> pinned;  // --layers: a range fixed by hand
  std::optional<LayerRange> layers;  // the range whose weights are loaded and serving
  uint64_t base_rss = 0;      // resident bytes with no stage, measured at start (appended; 0: not known)
  bool operator==(const MemberInfo&) const = default;
};

enum class MemberState : uint8_t { alive = 0, suspect = 1, dead = 2, left = 3 };
const char* state_name(MemberState s);  // "alive", "suspect", "dead", "left"

// One member's state at an incarnation (SWIM): the unit of gossip.
struct MemberUpdate {
  MemberInfo info;
  MemberState state = MemberState::alive;
  uint64_t incarnation = 0;
  std::string by;  // suspect: the member that suspects it, so that echoes are not confirmations
  bool operator==(const MemberUpdate&) const = default;
};

// A SWIM packet. Every gossip also carries the sender's view of the coordinator's term, so that
// leadership spreads with membership.
struct Gossip {
  enum class Kind : uint8_t {
    ping = 0,        // are you alive? (acked by the target)
    ping_req = 1,    // probe `target` for me (indirect probe)
    ack = 2,         // `target` is alive: the answer to the ping numbered `probe`
    sync = 3,        // here is my whole member table; send me yours (push-pull, and joining)
    sync_reply = 4,  // my whole member table
  };
  Kind kind = Kind::ping;
  uint64_t probe = 0;
  std::string from;    // the sender's address, where answers go
  std::string target;  // ping_req: whom to probe; ack: who answered
  uint64_t term = 0;
  std::string coordinator;  // the term's coordinator; empty: none known
  std::vector<MemberUpdate> updates;
};

struct PlanStage {
  std::string node;
  std::string address;
  LayerRange layers;
  bool operator==(const PlanStage&) const = default;
};

// The coordinator's stage plan, published to every member and repeated.
struct PlanAnnounce {
  uint64_t term = 0;
  std::string coordinator;
  uint64_t version = 0;
  std::vector<PlanStage> stages;  // in layer order
  std::string problem;            // why the plan does not cover the model, when it does not
};

struct RouteStage {
  std::string address;
  LayerRange layers;
  bool operator==(const RouteStage&) const = default;
};

struct SessionStart {
  std::string entry;               // where sampled tokens go
  std::vector<RouteStage> route;   // the stages in layer order
  SamplingSettings sampling;       // the last stage's sampler (the seed travels with the session)
  int steps = 0;                   // positions the session may run (its KV cache size)
  std::vector<int> tokens;         // the prompt, to the first stage only
  // A re-routed session resumes: the stages at the indices `kept` of `route` hold its state under
  // the wire id `resume` (of the route it left) and keep its first `resume_pos` positions; the
  // others run those positions from the activations of the stage before them. 0: a fresh start.
  // The kept stages at the indices `fill` (their layers moved) take those positions' activations
  // too: to run the layers they gained at their front, or to run their layers again and pass
  // them on.
  uint64_t resume = 0;
  int resume_pos = 0;
  std::vector<int> kept;
  std::vector<int> fill;
};

struct Step {
  int pos = 0;
  int token = 0;
};

enum class ActivationEncoding : uint8_t { f32 = 0, f16 = 1 };
const char* encoding_name(ActivationEncoding e);
std::size_t encoded_bytes(ActivationEncoding e);  // of one value: 4 (f32) or 2 (f16)

struct Activations {
  int pos = 0;        // position of the first row
  int count = 0;      // rows
  bool sample = false;  // the last stage samples from the last row
  ActivationEncoding encoding = ActivationEncoding::f32;
  std::vector<uint8_t> data;  // count * dim values, little-endian
  uint64_t compute_us = 0;    // the stages' compute time so far for these rows (appended)

  // Packs `count` rows of `dim` floats.
  static Activations pack(const float* x, int count, int dim, ActivationEncoding encoding);
  // Writes the rows into x (count * dim floats); InputError when the data is not count * dim
  // values of the encoding.
  void unpack(float* x, int dim) const;
};

struct Sampled {
  int pos = 0;    // positions run before this token
  int token = 0;
  uint64_t rng_state = 0;  // the sampler's state after drawing it: a replay resumes from here
  uint64_t compute_us = 0; // the stages' compute time for this position, summed over the route (appended)
};

struct SessionEnd {
  std::string reason;
};

// The entry heard nothing for a while: a stage that no longer holds the session answers with an
// Error of code kMoved, one that holds it stays silent.
struct SessionProbe {
  int pos = 0;  // the position the entry waits for
};

// Error code kMoved: the stage no longer serves the session (its layers moved); the entry
// re-routes the session instead of failing it.
inline constexpr int kMoved = 3;
// Error code kPeerGone: a node the session needs (another stage) is gone; the entry re-routes
// the session, and the stage keeps the session's state for the new route, which may keep it.
inline constexpr int kPeerGone = 4;
// Error code kRelayered: the stage now holds other layers (a new plan); it keeps what it holds of
// the session's state for a new route, which may keep it, and the entry re-routes the session.
inline constexpr int kRelayered = 5;

struct Error {
  int code = 1;  // as the CLI's exit codes: 2 bad input, 1 run-time failure; or kMoved, kPeerGone, kRelayered
  std::string message;
};

inline constexpr std::size_t kMaxStopStrings = 16;   // in a generate request
inline constexpr std::size_t kMaxChatMessages = 1024;
// The most items any array of a frame may hold: the largest of the limits above (the parser
// refuses a longer array before it reserves room for it).
inline constexpr std::size_t kMaxArrayItems = std::max({kMaxPeers, kMaxRouteStages, kMaxStopStrings, kMaxChatMessages});

// The completion's fields (CompletionRequest), then its sampler's.
struct GenerateRequest : CompletionRequest {
  SamplingSettings sampling;
};

struct Text {
  std::string text;
};

struct Done {
  GenerationStats stats;
  std::string finish_reason;  // "stop" or "length" (appended; empty from older nodes)
};

struct StatusRequest {};

struct Member {
  std::string name;
  std::string address;
  std::string state;  // alive, suspect, dead
  std::optional<LayerRange> layers;
  // What it advertises (zero when not known).
  uint64_t mem_budget = 0;
  double throughput = 0;
  int cores = 0;
  std::string arch;
  double since_seconds = 0;  // how long it has been in `state`, as this node saw it change
  uint64_t base_rss = 0;     // resident bytes with no stage, as it measured at start (0: not known)
};

// A node's counters since it started (for /metrics and status).
struct NodeCounters {
  uint64_t sessions_active = 0;   // entered through this node, in flight
  uint64_t sessions_total = 0;
  uint64_t tokens_generated = 0;  // sampled for sessions that entered here
  uint64_t stage_positions = 0;   // positions this node's stage computed
  double stage_compute_seconds = 0;
  uint64_t frames_sent = 0, bytes_sent = 0, frames_received = 0, bytes_received = 0;
  uint64_t hops = 0;              // network hops of the tokens whose round trip was measured
  double hop_seconds = 0;         // those round trips less the stages' compute time, summed
  // Frames received and dropped: undecodable, from a sender with no say over their session, for
  // a session not held, of a kind the receiver does not take (appended).
  uint64_t frames_dropped = 0;
  uint64_t rss_bytes = 0, peak_rss_bytes = 0;  // the process's resident memory, now and at peak (appended)
  // Re-routed sessions this node's stage kept, and the positions it kept of them rather than run
  // again (appended).
  uint64_t sessions_resumed = 0, positions_kept = 0;
  // Batched passes this node's stage ran, and the sessions they ran, summed (appended).
  uint64_t stage_passes = 0, stage_pass_sessions = 0;
};

struct Status {
  std::string self;  // the answering node's name
  uint64_t term = 0;
  std::optional<std::string> coordinator;
  std::vector<Member> members;
  uint64_t plan_version = 0;
  std::vector<PlanStage> stages;
  int model_layers = 0;
  bool serving = false;  // the stages cover every layer exactly once
  std::string problem;   // why not, when not
  NodeCounters counters;  // the answering node's (appended)
};

using Body = std::variant<SessionStart, Step, Activations, Sampled, SessionEnd, Error, Gossip,
                          PlanAnnounce, GenerateRequest, Text, Done, StatusRequest, Status, SessionProbe>;

struct Message {
  uint64_t session = 0;
  uint64_t seq = 0;
  Body body;

  MessageType type() const;
};

// One frame. Throws InputError when a field is over its limit.
std::vector<uint8_t> encode(const Message& message);
// Throws InputError for anything but one well-formed frame of this protocol version.
Message decode(std::span<const uint8_t> frame);

}  // namespace troupe::wire
