// The wire protocol's messages and records, each declared once: its fields in wire order, each
// with its member, its kind (msgpack type and checks) and its meaning. The encoder, the decoder
// and docs/protocol.md's message tables are derived from these lists (wire_kinds.hpp says how;
// docs/protocol.md ends with the recipe for adding a message).
#pragma once

#include "wire_kinds.hpp"

namespace troupe::wire::schema {

inline constexpr const char* kGossipKinds[] = {"ping", "ping_req", "ack", "sync", "sync_reply"};
inline constexpr const char* kMemberStates[] = {"alive", "suspect", "dead", "left"};
inline constexpr const char* kEncodings[] = {"f32", "f16"};

// --- records ------------------------------------------------------------------------------------

constexpr auto spec(Tag<LayerRange>) {
  return record<LayerRange>(
      "LayerRange", "A range of layers, half-open: `[begin, end)`.",
      field("begin", &LayerRange::begin, integer(0, kMaxPositions), "the first layer"),
      field("end", &LayerRange::end, integer(0, kMaxPositions), "one past the last layer"),
      rule<LayerRange>("end > begin", [](const LayerRange& r) { return r.end > r.begin; }));
}

constexpr auto spec(Tag<SamplingSettings>) {
  return record<SamplingSettings>(
      "SamplingSettings", "The last stage's sampler.",
      field("temperature", &SamplingSettings::temperature, real<float>(0),
            "0 takes the most likely token"),
      field("topp", &SamplingSettings::topp, real<float>(0, 1),
            "nucleus sampling's top-p; 0 or 1 samples from the whole distribution"),
      field("seed", &SamplingSettings::seed, uint64(),
            "the sampler's seed (a client resolves 0 to the clock, as `troupe run` does)"));
}

constexpr auto spec(Tag<RouteStage>) {
  return record<RouteStage>(
      "RouteStage", "A stage of a session's route.",
      field("address", &RouteStage::address, text(kMaxNameBytes), "the stage's address"),
      field("layers", &RouteStage::layers, nested<LayerRange>(), "the layers it runs"));
}

constexpr auto spec(Tag<PlanStage>) {
  return record<PlanStage>(
      "PlanStage", "A stage of the coordinator's plan.",
      field("node", &PlanStage::node, text(kMaxNameBytes), "the member's name"),
      field("address", &PlanStage::address, text(kMaxNameBytes), "its address"),
      field("layers", &PlanStage::layers, nested<LayerRange>(), "the layers it serves"));
}

constexpr auto spec(Tag<MemberInfo>) {
  return record<MemberInfo>(
      "MemberInfo", "What a member says about itself, spread by gossip (`discovery/membership.hpp`).",
      field("name", &MemberInfo::name, text(kMaxNameBytes), "its name"),
      field("address", &MemberInfo::address, text(kMaxNameBytes),
            "host:port of its ROUTER socket; how the mesh names it"),
      field("instance", &MemberInfo::instance, uint64(),
            "larger for a later start of the same address: a restart"),
      field("model", &MemberInfo::model, text(kMaxNameBytes),
            "identity of its model file; members of other models are ignored"),
      field("model_layers", &MemberInfo::model_layers, integer(0, kMaxPositions), "its model's layers"),
      field("mem_budget", &MemberInfo::mem_budget, uint64(),
            "bytes the whole process may hold: weights, caches, buffers, code"),
      field("throughput", &MemberInfo::throughput, real<double>(0),
            "GB/s its kernels read weights at (a self-benchmark at start)"),
      field("cores", &MemberInfo::cores, integer(0, 1 << 20), "its cores"),
      field("arch", &MemberInfo::arch, text(kMaxNameBytes), "its architecture"),
      field("pinned", &MemberInfo::pinned, maybe(nested<LayerRange>()),
            "a range fixed by hand (`--layers`); nil: none"),
      field("layers", &MemberInfo::layers, maybe(nested<LayerRange>()),
            "the range whose weights are loaded and serving; nil: none"),
      appended(),
      field("base_rss", &MemberInfo::base_rss, uint64(),
            "resident bytes the process held with no stage, measured at start (code, threads, "
            "buffers): the planner takes it off the budget. 0: not measured"));
}

constexpr auto spec(Tag<MemberUpdate>) {
  return record<MemberUpdate>(
      "MemberUpdate", "One member's state at an incarnation (SWIM): the unit of gossip.",
      field("info", &MemberUpdate::info, nested<MemberInfo>(), "the member"),
      field("state", &MemberUpdate::state, enumeration<MemberState>(kMemberStates), "its state"),
      field("incarnation", &MemberUpdate::incarnation, uint64(),
            "the incarnation the state holds at (a member refutes suspicion with a larger one)"),
      appended(),
      field("by", &MemberUpdate::by, text(kMaxNameBytes),
            "suspect: the address of the member whose probes failed; a suspicion shortens only for "
            "members suspecting independently, not for its echoes through gossip. Empty otherwise"));
}

constexpr auto spec(Tag<ChatMessage>) {
  return record<ChatMessage>(
      "ChatMessage", "One turn of a conversation.",
      field("role", &ChatMessage::role, text(kMaxNameBytes), "system, user or assistant"),
      field("content", &ChatMessage::content, text(kMaxTextBytes), "the turn's text"));
}

constexpr auto spec(Tag<GenerationStats>) {
  return record<GenerationStats>(
      "GenerationStats", "A completion's statistics.",
      field("prompt_tokens", &GenerationStats::prompt_tokens, integer(0, kMaxPositions),
            "tokens in the prompt"),
      field("generated_tokens", &GenerationStats::generated_tokens, integer(0, kMaxPositions),
            "tokens sampled by the model"),
      field("positions", &GenerationStats::positions, integer(0, kMaxPositions), "forward passes run"),
      field("first_token_ms", &GenerationStats::first_token_ms, real<double>(),
            "start to the first sampled token (the prompt included)"),
      field("decode_ms", &GenerationStats::decode_ms, real<double>(), "first sampled token to the last one"),
      field("total_ms", &GenerationStats::total_ms, real<double>(), "start to end"));
}

constexpr auto spec(Tag<Member>) {
  return record<Member>(
      "Member", "A member as a status shows it; what it advertises is 0 or \"\" when not known.",
      field("name", &Member::name, text(kMaxNameBytes), "its name"),
      field("address", &Member::address, text(kMaxNameBytes), "its address"),
      field("state", &Member::state, text(kMaxNameBytes), "alive, suspect, dead or left"),
      field("layers", &Member::layers, maybe(nested<LayerRange>()), "the layers it has loaded; nil: none"),
      field("mem_budget", &Member::mem_budget, uint64(), "bytes the whole process may hold"),
      field("throughput", &Member::throughput, real<double>(), "GB/s its kernels read weights at"),
      field("cores", &Member::cores, integer(0, 1 << 20), "its cores"),
      field("arch", &Member::arch, text(kMaxNameBytes), "its architecture"),
      appended(),
      field("since_seconds", &Member::since_seconds, real<double>(0),
            "seconds it has been in its state, as the answering node saw it change (dead and left "
            "members are forgotten after 600)"),
      appended(),
      field("base_rss", &Member::base_rss, uint64(),
            "resident bytes it held with no stage, as it measured at start; 0: not known"));
}

constexpr auto spec(Tag<NodeCounters>) {
  return record<NodeCounters>(
      "NodeCounters", "A node's counters since it started (`/metrics` shows them).",
      field("sessions_active", &NodeCounters::sessions_active, uint64(),
            "sessions entered through this node, in flight"),
      field("sessions_total", &NodeCounters::sessions_total, uint64(), "sessions entered through this node"),
      field("tokens_generated", &NodeCounters::tokens_generated, uint64(),
            "tokens sampled for sessions that entered here"),
      field("stage_positions", &NodeCounters::stage_positions, uint64(),
            "positions this node's stage computed"),
      field("stage_compute_seconds", &NodeCounters::stage_compute_seconds, real<double>(),
            "the time its stage spent computing them"),
      field("frames_sent", &NodeCounters::frames_sent, uint64(), "frames sent"),
      field("bytes_sent", &NodeCounters::bytes_sent, uint64(), "their bytes"),
      field("frames_received", &NodeCounters::frames_received, uint64(), "frames received"),
      field("bytes_received", &NodeCounters::bytes_received, uint64(), "their bytes"),
      field("hops", &NodeCounters::hops, uint64(), "network hops of the tokens whose round trip was measured"),
      field("hop_seconds", &NodeCounters::hop_seconds, real<double>(),
            "those round trips less the stages' compute time, summed"),
      appended(),
      field("frames_dropped", &NodeCounters::frames_dropped, uint64(),
            "frames received and dropped: undecodable, from a sender with no say over their session, "
            "for a session not held, or of a kind the node does not take"),
      appended(),
      field("rss_bytes", &NodeCounters::rss_bytes, uint64(), "the node's resident memory now (0: not measured)"),
      field("peak_rss_bytes", &NodeCounters::peak_rss_bytes, uint64(), "and at its peak"),
      appended(),
      field("sessions_resumed", &NodeCounters::sessions_resumed, uint64(),
            "re-routed sessions this node's stage kept (it was on the new route with the same layers)"),
      field("positions_kept", &NodeCounters::positions_kept, uint64(),
            "the positions of those sessions it kept rather than run again"),
      appended(),
      field("stage_passes", &NodeCounters::stage_passes, uint64(),
            "batched passes its stage ran through its layers (stage_positions / stage_passes: rows a pass)"),
      field("stage_pass_sessions", &NodeCounters::stage_pass_sessions, uint64(),
            "the sessions those passes ran, summed (/ stage_passes: sessions batched a pass)"));
}

// --- messages between nodes ---------------------------------------------------------------------

constexpr auto spec(Tag<SessionStart>) {
  return message<SessionStart>(
      MessageType::session_start, "session_start", "entry → first stage → … → last stage",
      "A session's settings. Each stage forwards it, without tokens, to the next, before its "
      "first activations.",
      field("entry", &SessionStart::entry, text(kMaxNameBytes), "the entry's address, where sampled tokens go"),
      field("route", &SessionStart::route, array_of(nested<RouteStage>(), kMaxRouteStages),
            "the session's stages, in layer order"),
      field("sampling", &SessionStart::sampling, nested<SamplingSettings>(),
            "the last stage's sampler (the seed travels with the session)"),
      field("steps", &SessionStart::steps, integer(1, kMaxPositions),
            "positions the session may run (its KV cache size)"),
      field("tokens", &SessionStart::tokens, int32_bin(kMaxPositions),
            "the prompt's token ids, to the first stage only"),
      appended(),
      field("resume", &SessionStart::resume, uint64(),
            "0, or the wire id the route's kept stages hold the session's state under (the route "
            "it left)"),
      field("resume_pos", &SessionStart::resume_pos, integer(0, kMaxPositions),
            "positions the kept stages keep; the other stages run them from the activations of "
            "the stage before (its log), or the first stage from the tokens"),
      field("kept", &SessionStart::kept, array_of(integer(0, int(kMaxRouteStages) - 1), kMaxRouteStages),
            "the indices in `route` of the stages that keep the session's state"),
      appended(),
      field("fill", &SessionStart::fill, array_of(integer(0, int(kMaxRouteStages) - 1), kMaxRouteStages),
            "the indices in `route` of kept stages whose layers moved: they take the kept positions' "
            "activations too, to fill the layers they gained or to run them on for the next stage"));
}

constexpr auto spec(Tag<Step>) {
  return message<Step>(
      MessageType::step, "step", "entry → first stage", "Run `token` at position `pos`.",
      field("pos", &Step::pos, integer(0, kMaxPositions), "the position"),
      field("token", &Step::token, integer(0, INT32_MAX), "the token id"));
}

constexpr auto spec(Tag<Activations>) {
  return message<Activations>(
      MessageType::activations, "activations", "stage → next stage",
      "Hidden states of `count` positions starting at `pos`, `dim` values each "
      "(`Activations::pack` and `unpack`).",
      field("pos", &Activations::pos, integer(0, kMaxPositions), "the position of the first row"),
      field("count", &Activations::count, integer(1, kMaxActivationRows), "rows (stages send at most 64)"),
      field("sample", &Activations::sample, boolean(), "the last stage samples from the last row"),
      field("encoding", &Activations::encoding, enumeration<ActivationEncoding>(kEncodings),
            "the values' encoding"),
      field("data", &Activations::data, raw_bytes(kMaxFrameBytes),
            "`count` × `dim` raw little-endian floats of `encoding`, never msgpack arrays or text "
            "(`unpack` checks the size against the model's `dim`)"),
      appended(),
      field("compute_us", &Activations::compute_us, uint64(),
            "the stages' compute time so far for these rows, in µs (the entry subtracts it from a "
            "step's round trip to get the network's share)"));
}

constexpr auto spec(Tag<Sampled>) {
  return message<Sampled>(
      MessageType::sampled, "sampled", "last stage → entry",
      "The token sampled after running positions `[0, pos)`.",
      field("pos", &Sampled::pos, integer(0, kMaxPositions), "positions run before this token"),
      field("token", &Sampled::token, integer(0, INT32_MAX), "the token id"),
      field("rng_state", &Sampled::rng_state, uint64(),
            "the sampler's state after drawing it (a re-routed session's new last stage starts its "
            "sampler there)"),
      appended(),
      field("compute_us", &Sampled::compute_us, uint64(),
            "the route's compute time for this position, in µs, summed over the stages"));
}

constexpr auto spec(Tag<SessionEnd>) {
  return message<SessionEnd>(
      MessageType::session_end, "session_end", "entry → every stage", "Drop the session's KV cache.",
      field("reason", &SessionEnd::reason, text(kMaxTextBytes), "why the session ended"));
}

constexpr auto spec(Tag<SessionProbe>) {
  return message<SessionProbe>(
      MessageType::session_probe, "session_probe", "entry → every stage",
      "No token came for a while: a stage that does not hold the session answers with `error` "
      "code 3 (`kMoved`), and the entry re-routes it; a stage that holds it answers nothing.",
      field("pos", &SessionProbe::pos, integer(0, kMaxPositions), "the position the entry waits for"));
}

constexpr auto spec(Tag<Error>) {
  return message<Error>(
      MessageType::error, "error", "stage → entry, entry → client", "The session failed.",
      field("code", &Error::code, integer(0, 255),
            "the exit code a client should use: 2 bad input, 1 run-time failure; from a stage, 3 "
            "(`kMoved`) says the stage no longer holds the session's layers, and the entry "
            "re-routes the session instead of failing it; 4 (`kPeerGone`) says another node the "
            "session needs is gone: the entry re-routes it, and the stage keeps the session's "
            "state for the new route; 5 (`kRelayered`) says the stage now holds other layers and "
            "keeps what it holds of the session for the new route"),
      field("message", &Error::message, text(kMaxTextBytes), "what went wrong; it names the peer at fault"));
}

constexpr auto spec(Tag<Gossip>) {
  return message<Gossip>(
      MessageType::gossip, "gossip", "node → node",
      "SWIM membership (`docs/mesh.md`). Every gossip carries the sender's view of the "
      "coordinator's term, so that leadership spreads with membership.",
      field("kind", &Gossip::kind, enumeration<Gossip::Kind>(kGossipKinds),
            "ping: are you alive? ping_req: probe `target` for me. ack: `target` is alive, the "
            "answer to the ping numbered `probe`. sync: my whole member table; send me yours "
            "(push-pull, and joining). sync_reply: my whole member table"),
      field("probe", &Gossip::probe, uint64(), "numbers a ping; an ack names the ping it answers"),
      field("from", &Gossip::from, text(kMaxNameBytes), "the sender's address, where answers go"),
      field("target", &Gossip::target, text(kMaxNameBytes), "ping_req: whom to probe; ack: who answered"),
      field("term", &Gossip::term, uint64(), "the coordinator's term, as the sender knows it"),
      field("coordinator", &Gossip::coordinator, text(kMaxNameBytes),
            "that term's coordinator's address; \"\": none known"),
      field("updates", &Gossip::updates, array_of(nested<MemberUpdate>(), kMaxPeers), "member states"));
}

constexpr auto spec(Tag<PlanAnnounce>) {
  return message<PlanAnnounce>(
      MessageType::plan, "plan", "coordinator → every member",
      "The stage plan, repeated every second; a member takes the newest version of the latest "
      "term.",
      field("term", &PlanAnnounce::term, uint64(), "the coordinator's term"),
      field("coordinator", &PlanAnnounce::coordinator, text(kMaxNameBytes), "the coordinator's address"),
      field("version", &PlanAnnounce::version, uint64(), "the plan's version"),
      field("stages", &PlanAnnounce::stages, array_of(nested<PlanStage>(), kMaxRouteStages),
            "the stages, in layer order"),
      field("problem", &PlanAnnounce::problem, text(kMaxTextBytes),
            "why the plan does not cover the model, when it does not"));
}

// --- messages between a client and its entry node -----------------------------------------------

constexpr auto spec(Tag<GenerateRequest>) {
  return message<GenerateRequest>(
      MessageType::generate, "generate", "client → entry",
      "One completion; the entry answers with `text` frames, then `done` or `error`.",
      field("prompt", &GenerateRequest::prompt, text(kMaxTextBytes),
            "the prompt (unused when `messages` is not empty)"),
      field("sampling", &GenerateRequest::sampling, nested<SamplingSettings>(), "the sampler"),
      field("steps", &GenerateRequest::steps, integer(0, kMaxPositions), "`-n`: 0 = the model's context"),
      field("chat", &GenerateRequest::chat, boolean(),
            "a chat turn: the prompt is not echoed, and EOS also ends the reply"),
      appended(),
      field("max_tokens", &GenerateRequest::max_tokens, integer(0, kMaxPositions),
            "sampled tokens at most; 0: no cap (prompt + max_tokens over the context is an error, "
            "code 2)"),
      field("echo", &GenerateRequest::echo, boolean(), "false leaves the prompt's text out"),
      field("stop", &GenerateRequest::stop, array_of(text(kMaxNameBytes), kMaxStopStrings),
            "the text ends before the first of these"),
      field("messages", &GenerateRequest::messages, array_of(nested<ChatMessage>(), kMaxChatMessages),
            "when not empty, a conversation that replaces the prompt: the entry renders it with "
            "`chat_template`, and the reply then also ends at the template's end-of-turn token"),
      field("chat_template", &GenerateRequest::chat_template, text(kMaxNameBytes),
            "`llama2`, `llama3`, `chatml` or `zephyr`; \"\": the one the entry's model file "
            "names, else llama2"));
}

constexpr auto spec(Tag<wire::Text>) {
  return message<wire::Text>(
      MessageType::text, "text", "entry → client",
      "Printable text, as it comes (the prompt first, unless chat).",
      field("text", &wire::Text::text, text(kMaxTextBytes), "the piece"));
}

constexpr auto spec(Tag<Done>) {
  return message<Done>(
      MessageType::done, "done", "entry → client", "The completion ended.",
      flattened(&Done::stats),
      appended(),
      field("finish_reason", &Done::finish_reason, text(kMaxNameBytes),
            "`stop` (an end token or a stop string) or `length` (max_tokens or steps)"));
}

constexpr auto spec(Tag<StatusRequest>) {
  return message<StatusRequest>(MessageType::status_request, "status_request", "client → node",
                                "Asks for a `status`.");
}

constexpr auto spec(Tag<Status>) {
  return message<Status>(
      MessageType::status, "status", "node → client", "The answering node's view of the mesh.",
      field("self", &Status::self, text(kMaxNameBytes), "the answering node's name"),
      field("term", &Status::term, uint64(), "the coordinator's term"),
      field("coordinator", &Status::coordinator, maybe(text(kMaxNameBytes)),
            "the coordinator's name; nil: none yet"),
      field("members", &Status::members, array_of(nested<Member>(), kMaxPeers), "the members it knows"),
      field("plan_version", &Status::plan_version, uint64(), "the plan's version"),
      field("stages", &Status::stages, array_of(nested<PlanStage>(), kMaxRouteStages),
            "the plan's stages, in layer order"),
      field("model_layers", &Status::model_layers, integer(0, kMaxPositions), "the model's layers"),
      field("serving", &Status::serving, boolean(),
            "a live route covers the model (the stages cover every layer exactly once)"),
      field("problem", &Status::problem, text(kMaxTextBytes), "why not, when not"),
      appended(),
      field("counters", &Status::counters, nested<NodeCounters>(), "the answering node's counters"));
}

}  // namespace troupe::wire::schema
