#include "stage_actor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "troupe/model/error.hpp"
#include "troupe/model/transformer.hpp"  // kMaxBatch

namespace troupe::actors {

StageActor::behavior_type stage_actor(StageActor::stateful_pointer<StageState> self, const NodeContext* node) {
  return self->state.behavior(node);
}

StageActor::behavior_type StageState::behavior(const NodeContext* node) {
  node_ = node;
  x_.resize(std::size_t(Transformer::kMaxBatch) * node_->config->dim);
  return {
      [this](init_atom, TransportActor transport, NodeActor node_actor) {
        on_init(std::move(transport), std::move(node_actor));
      },
      [this](wire_atom, const Origin& from, wire::Message& message) { on_wire(from, message); },
      [this](load_atom, int begin, int end) { on_load(begin, end); },
      [this](peer_lost_atom, const std::string& address) { on_peer_lost(address); },
      [this](pass_atom, uint64_t ticket) { on_pass(ticket); },
      [this](tick_atom) { on_tick(); },
  };
}

// --- sending ---------------------------------------------------------------------------------------

template <class Handle, class... Ts>
void StageState::send_when_done(const Handle& to, Ts&&... xs) {
  const auto busy = node_->sim_hook->device_busy();
  if (busy > busy.zero()) {
    self_->delayed_send(to, busy, std::forward<Ts>(xs)...);
  } else {
    self_->send(to, std::forward<Ts>(xs)...);
  }
}

// The next pass (stage_batch.cpp) comes after what is in the mailbox now.
void StageState::schedule_pass() {
  if (pass_due_) return;
  pass_due_ = true;
  send_when_done(caf::actor_cast<StageActor>(self_), pass_atom::value, ++pass_ticket_);
}

void StageState::send_to_node(const std::string& address, uint64_t id, uint64_t seq, wire::Body body) {
  auto post = [this](const auto& to, auto&&... xs) { send_when_done(to, std::forward<decltype(xs)>(xs)...); };
  routes_.to_node(post, *node_, address, wire::Message{id, seq, std::move(body)});
}

void StageState::fail(uint64_t id, const std::string& entry, const std::string& why) {
  spdlog::warn("session {:x}: {}", id, why);
  if (!entry.empty()) send_to_node(entry, id, 0, wire::Error{1, where() + ": " + why});
  sessions_.erase(id);
}

std::string StageState::where() const {
  return "stage " + (layers_ ? discovery::format_range(*layers_) : std::string("(none)")) + " on " + node_->name;
}

// --- start-up and the layers held --------------------------------------------------------------------

void StageState::on_init(TransportActor transport, NodeActor node_actor) {
  routes_.transport = std::move(transport);
  routes_.node = std::move(node_actor);
  routes_.stage = caf::actor_cast<StageActor>(self_);
  if (node_->initial) {
    model_ = node_->initial;
    layers_ = node_->initial->layers();
    report();
  }
}

void StageState::on_load(int begin, int end) {
  hold(end > begin ? std::optional<LayerRange>(LayerRange{begin, end}) : std::nullopt);
}

void StageState::report() {
  const LayerRange r = layers_.value_or(LayerRange{0, 0});
  send_when_done(routes_.node, loaded_atom::value, r.begin, r.end);
}

// Holds `want` (none: nothing). The old weights go before the new ones come, so a small device
// never holds both. A session keeps what it holds of the layers both ranges share (its entry
// hears so and resumes it on a new route, which fills the layers gained); a session that shares
// none moves elsewhere: its entry replays it on a route of its own.
void StageState::hold(std::optional<LayerRange> want) {
  if (want == layers_) {
    report();
    return;
  }
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (want && it->second.valid.shared(*want).size() > 0) {
      ++it;
      continue;
    }
    send_to_node(it->second.entry, it->first, 0, wire::Error{wire::kMoved, where() + " moved"});
    it = sessions_.erase(it);
  }
  model_.reset();
  layers_.reset();
  if (want) {
    const auto t0 = node_->clock->now();
    try {
      model_ = node_->load_layers(*want);
      layers_ = want;
      spdlog::info("loaded layers {} in {:.0f} ms", discovery::format_range(*want),
                   std::chrono::duration<double, std::milli>(node_->clock->now() - t0).count());
    } catch (const std::exception& e) {
      spdlog::error("cannot load layers {}: {}", discovery::format_range(*want), e.what());
    }
  } else {
    spdlog::info("released its layers");
  }
  carry_sessions();
  report();
}

// The sessions kept through a change of layers: their caches on the new layers, holding what
// they held of the layers kept; each entry hears it must re-route (wire::kRelayered).
void StageState::carry_sessions() {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = it->second;
    const std::string why = where() + " now holds other layers; it keeps the session's state for a new route";
    try {
      if (!layers_) throw std::runtime_error("no layers loaded");
      s.cache = model_->carry(*s.cache);
      s.valid = s.valid.shared(*layers_);
    } catch (const std::exception& e) {
      send_to_node(s.entry, it->first, 0, wire::Error{wire::kMoved, where() + ": " + e.what()});
      it = sessions_.erase(it);
      continue;
    }
    s.fill.reset();
    s.prompt = {};
    s.detached = true;
    s.relayered = true;
    send_to_node(s.entry, it->first, 0, wire::Error{wire::kRelayered, why});
    ++it;
  }
}

// Sessions that needed the lost peer cannot finish on their route; their entry re-routes them
// (discovery::forget_notice says why it is told), and their state waits for the new route, which
// may keep it, or for their end. Those of an entry lost are forgotten.
void StageState::on_peer_lost(const std::string& address) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = it->second;
    const auto notice = discovery::forget_notice(s.entry, address);
    if ((notice && s.detached) || std::find(s.peers.begin(), s.peers.end(), address) == s.peers.end()) {
      ++it;
      continue;
    }
    if (notice) {
      spdlog::info("session {:x} stopped: peer {} was lost", it->first, address);
      send_to_node(s.entry, it->first, 0, wire::Error{wire::kPeerGone, where() + ": " + *notice});
      s.detached = true;
      ++it;
    } else {
      spdlog::info("session {:x} dropped: its entry {} was lost", it->first, address);
      orphaned_.add(it->first, s.entry);
      it = sessions_.erase(it);
    }
  }
}

// --- sessions ------------------------------------------------------------------------------------------

// Every handler below checks what it takes from a peer; an exception that still escapes one (peer
// data reaching code that throws where no handler expected it) drops the frame, and the stage
// goes on: escaping, it would end the stage actor and every session it holds.
void StageState::on_wire(const Origin& from, wire::Message& message) {
  try {
    on_message(from, message);
  } catch (const std::exception& e) {
    drop_frame(*node_, from, std::string(wire::type_name(message.type())) + ": " + e.what());
  }
}

void StageState::on_message(const Origin& from, wire::Message& message) {
  const uint64_t id = message.session;
  if (auto* m = std::get_if<wire::SessionStart>(&message.body)) {
    on_session_start(from, id, *m);
  } else if (auto* m = std::get_if<wire::Step>(&message.body)) {
    on_step(from, id, *m);
  } else if (auto* m = std::get_if<wire::Activations>(&message.body)) {
    on_activations(from, id, *m);
  } else if (std::get_if<wire::SessionEnd>(&message.body)) {
    on_session_end(from, id);
  } else if (auto* m = std::get_if<wire::SessionProbe>(&message.body)) {
    on_session_probe(from, id, *m);
  } else {
    drop_frame(*node_, from, std::string("the stage does not take ") + wire::type_name(message.type()));
  }
}

StageState::Session* StageState::session_from(const Origin& from, uint64_t id, const char* what, bool from_entry) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    unknown_session(from, id, what);
    return nullptr;
  }
  Session& s = it->second;
  const std::string& sender = from_entry ? s.entry : s.previous;
  if (!from.is_peer(sender)) {
    drop_frame(*node_, from, fmt::format("{} for session {:x}, which only {} sends", what, id, sender));
    return nullptr;
  }
  s.heard = node_->clock->now();
  if (s.relayered) return nullptr;  // a frame of the route it left: its layers are not these
  return &s;
}

// Whether a session_start comes from the peer before this stage on the route it names (the
// entry, for the first stage). Else it is dropped, and nothing is said: it may be forged, and an
// error would go to whatever entry it names.
bool StageState::start_from_route(const Origin& from, uint64_t id, const wire::SessionStart& m) {
  const auto self = std::find_if(m.route.begin(), m.route.end(),
                                 [&](const wire::RouteStage& st) { return st.address == node_->address; });
  std::string why;
  if (self == m.route.end()) {
    why = fmt::format("a session_start for session {:x} names a route without this node", id);
  } else if (const std::string& sender = self == m.route.begin() ? m.entry : (self - 1)->address; !from.is_peer(sender)) {
    why = fmt::format("a session_start for session {:x}, which only {} sends", id, sender);
  }
  if (!why.empty()) drop_frame(*node_, from, why);
  return why.empty();
}

std::string StageState::memory_refusal(int steps) const {
  const wire::MemberInfo& me = node_->member;
  // Only a node that measured itself knows what it holds; its figure then is read now.
  const uint64_t resident = me.base_rss && node_->memory ? node_->memory()[0] : 0;
  const discovery::ModelCost& cost = node_->mesh.cost;
  const int seq_len = std::max(node_->config->seq_len, 1);
  const uint64_t kv = cost.kv_bytes * uint64_t(layers_ ? layers_->size() : 0) * uint64_t(std::max(steps, 0)) / seq_len;
  return discovery::memory_refusal(me.mem_budget, resident, kv + cost.scratch_bytes, sessions_.size());
}

std::size_t StageState::sessions_of(const std::string& entry) const {
  return std::size_t(std::count_if(sessions_.begin(), sessions_.end(), [&](const auto& s) { return s.second.entry == entry; }));
}

void StageState::on_session_start(const Origin& from, uint64_t id, wire::SessionStart& m) {
  if (sessions_.count(id)) {
    drop_frame(*node_, from, fmt::format("session {:x} started twice; the second start is dropped", id));
    return;
  }
  if (ended_.contains(id)) {
    spdlog::info("session {:x} ended before it started here; its start is dropped", id);
    return;
  }
  if (!start_from_route(from, id, m)) return;
  const bool kept = discovery::kept_at(m, node_->address);
  if (const std::size_t held = sessions_of(m.entry); !kept && m.entry != node_->address && held >= kMaxSessionsPerEntry) {
    send_to_node(m.entry, id, 0, wire::Error{1, where() + ": busy: entry " + m.entry + " holds " + std::to_string(held) +
                                                   " sessions here, the most one entry may hold at a stage"});
    return;
  }
  // A kept session is counted already: it takes no place of another.
  const std::size_t others = sessions_.size() - (kept && sessions_.count(m.resume) ? 1 : 0);
  const discovery::StageAdmission admission = discovery::admit_stage(
      node_->address, layers_, node_->config->n_layers, others, m.entry, m.route, m.tokens.size(), m.steps);
  if (!admission.taken()) {
    send_to_node(m.entry, id, 0, wire::Error{admission.code, where() + ": " + admission.why});
    return;
  }
  if (!kept) {
    if (open_session(id, m)) begin_on_route(id, sessions_.at(id), m, admission, nullptr);
  } else if (const auto work = resume_session(id, m, admission)) {
    begin_on_route(id, sessions_.at(id), m, admission, &*work);
  }
}

// A session new to this stage: its cache, if the memory budget holds it.
bool StageState::open_session(uint64_t id, const wire::SessionStart& m) {
  if (const std::string why = memory_refusal(m.steps); !why.empty()) {
    send_to_node(m.entry, id, 0, wire::Error{1, where() + ": " + why});
    return false;
  }
  Session s;
  try {
    s.cache = model_->open(m.steps);
  } catch (const std::exception& e) {
    send_to_node(m.entry, id, 0, wire::Error{1, where() + ": " + e.what()});
    return false;
  }
  s.entry = m.entry;
  s.valid = *layers_;
  s.log_at = last() ? -1 : layers_->end;
  sessions_.emplace(id, std::move(s));
  added_session();
  return true;
}

// A session this stage keeps from the route it left (under m.resume): now under `id`, back to
// the positions kept, with the work its moved layers need (discovery::resume_work). One it does
// not hold as the start says (forgotten, reclaimed, restarted, fewer positions, layers it cannot
// fill) is refused as moved, and the entry replays the session on a route of its own.
std::optional<discovery::ResumeWork> StageState::resume_session(uint64_t id, const wire::SessionStart& m,
                                                                const discovery::StageAdmission& a) {
  auto it = sessions_.find(m.resume);
  const int until = m.resume_pos;
  discovery::ResumeWork work;
  if (it == sessions_.end() || it->second.entry != m.entry || it->second.next_pos < until ||
      it->second.cache->context() < m.steps) {
    work.refusal = "does not hold the session's state to resume";
  } else {
    const Session& held = it->second;
    const bool output_needed = !last() && (!discovery::kept_at(m, a.next) || discovery::fills_at(m, a.next));
    const int log_at = held.log.size() >= row_bytes() * std::size_t(until) ? held.log_at : -1;
    work = discovery::resume_work(*layers_, held.valid, log_at, discovery::fills_at(m, node_->address), output_needed);
  }
  if (!work.refusal.empty()) {
    send_to_node(m.entry, id, 0, wire::Error{wire::kMoved, where() + ": " + work.refusal});
    // What it holds of the session cannot serve it any more: the entry replays it elsewhere.
    if (it != sessions_.end() && it->second.entry == m.entry) sessions_.erase(it);
    return std::nullopt;
  }
  auto moved = sessions_.extract(it);
  moved.key() = id;
  sessions_.insert(std::move(moved));
  ended_.add(m.resume);  // frames of the route it left that come late are dropped quietly
  Session& s = sessions_.at(id);
  s.next_pos = work.rerun ? 0 : until;
  s.log.resize(std::min(s.log.size(), row_bytes() * std::size_t(until)));
  s.detached = false;
  s.relayered = false;
  s.fill.reset();
  if (work.on_log.size() > 0) run_on_log(s, until, work.on_log);
  if (work.rerun) s.valid = *layers_;
  if (work.on_input.size() > 0 && !work.rerun) s.fill = Session::Fill{work.on_input, 0, until};
  s.log_at = last() ? -1 : layers_->end;
  spdlog::info("session {:x} resumed as {:x} at position {}{}", m.resume, id, until,
               work.rerun ? ", running the kept positions again" : "");
  node_->metrics->sessions_resumed.fetch_add(1, std::memory_order_relaxed);
  if (!work.rerun) node_->metrics->positions_kept.fetch_add(uint64_t(until), std::memory_order_relaxed);
  return work;
}

// The session's place on its route; the start goes on to the next stage, then, when this stage
// was kept and the next needs the kept positions' rows, its log of them; the first stage runs its
// tokens.
void StageState::begin_on_route(uint64_t id, Session& s, wire::SessionStart& m, const discovery::StageAdmission& a,
                                const discovery::ResumeWork* resumed) {
  if (last()) s.sampler.emplace(node_->config->vocab_size, m.sampling.temperature, m.sampling.topp, m.sampling.seed);
  s.previous = a.index == 0 ? m.entry : m.route[a.index - 1].address;
  s.next = a.next;
  s.peers = a.peers;
  // Rows the next stage keeps are not sent (none after the last stage).
  const bool next_keeps = discovery::kept_at(m, a.next) && !discovery::fills_at(m, a.next);
  s.forward_from = next_keeps ? m.resume_pos : 0;
  s.prompt = std::move(m.tokens);
  s.heard = node_->clock->now();
  m.tokens.clear();
  // The next stage learns of the session before its first activations, over the same link.
  if (!last()) send_to_node(s.next, id, ++s.seq, m);
  if (resumed && resumed->send_log) send_log(id, s, m.resume_pos);
  if (!s.prompt.empty()) schedule_pass();
}

// The rows of positions [0, until) as this stage sent them, to a next stage new to the session.
void StageState::send_log(uint64_t id, Session& s, int until) {
  const std::size_t row = row_bytes();
  for (int at = 0; at < until; at += Transformer::kMaxBatch) {
    wire::Activations a;
    a.pos = at;
    a.count = std::min(Transformer::kMaxBatch, until - at);
    a.encoding = node_->encoding;
    const auto from = s.log.begin() + std::ptrdiff_t(row * std::size_t(at));
    a.data.assign(from, from + std::ptrdiff_t(row * std::size_t(a.count)));
    send_to_node(s.next, id, ++s.seq, std::move(a));
  }
}

// Runs `layers` (gained at the back of the range) on the log's rows of positions [0, until); the
// rows they give are the log now.
void StageState::run_on_log(Session& s, int until, LayerRange layers) {
  const auto t0 = node_->clock->now();
  const int dim = node_->config->dim;
  const std::size_t row = row_bytes();
  std::vector<uint8_t> log;
  log.reserve(row * std::size_t(until));
  for (int at = 0; at < until; at += Transformer::kMaxBatch) {
    wire::Activations a;
    a.count = std::min(Transformer::kMaxBatch, until - at);
    a.encoding = node_->encoding;
    const auto from = s.log.begin() + std::ptrdiff_t(row * std::size_t(at));
    a.data.assign(from, from + std::ptrdiff_t(row * std::size_t(a.count)));
    a.unpack(x_.data(), dim);
    s.cache->forward_layers(x_.data(), a.count, at, layers);
    const wire::Activations out = wire::Activations::pack(x_.data(), a.count, dim, node_->encoding);
    log.insert(log.end(), out.data.begin(), out.data.end());
  }
  s.log = std::move(log);
  s.valid.end = layers.end;
  charge(until, t0);
}

// Of `count` rows at `pos` in x_, those a resumed session's fill awaits run through the layers it
// fills only (what they give is not sent: the log holds it), and the rest move to the front of
// x_. Returns how many it took.
int StageState::take_fill(Session& s, int pos, int count) {
  if (!s.fill) return 0;
  const int taken = std::min(count, s.fill->until - pos);
  s.cache->forward_layers(x_.data(), taken, pos, s.fill->layers);
  s.fill->pos += taken;
  if (s.fill->pos == s.fill->until) {
    s.valid.begin = s.fill->layers.begin;
    s.fill.reset();
  }
  const std::size_t dim = std::size_t(node_->config->dim);
  std::copy(x_.begin() + std::ptrdiff_t(dim * std::size_t(taken)),
            x_.begin() + std::ptrdiff_t(dim * std::size_t(count)), x_.begin());
  return taken;
}

// The `count` rows at `pos` in x_: those a fill awaits through its layers, the rest through every
// layer and on (emit).
void StageState::run_rows(uint64_t id, Session& s, int pos, int count, bool sample, Clock::time_point t0,
                          uint64_t upstream_us) {
  const int filled = take_fill(s, pos, count);
  if (filled == count) {
    charge(count, t0);
    return;
  }
  const int rest = count - filled;
  s.cache->forward_layers(x_.data(), rest, pos + filled);
  float* row = x_.data() + std::size_t(rest - 1) * node_->config->dim;
  float* logits = sample && last() ? s.cache->logits(row) : nullptr;
  emit(id, s, pos + filled, rest, sample, x_.data(), logits, upstream_us + charge(count, t0));
}

std::size_t StageState::row_bytes() const {
  return std::size_t(node_->config->dim) * wire::encoded_bytes(node_->encoding);
}

void StageState::on_session_end(const Origin& from, uint64_t id) {
  auto it = sessions_.find(id);
  if (it != sessions_.end() && !from.is_peer(it->second.entry)) {
    drop_frame(*node_, from, fmt::format("session_end for session {:x}, which only {} sends", id, it->second.entry));
    return;
  }
  if (it != sessions_.end()) sessions_.erase(it);
  ended_.add(id);
  orphaned_.take(id);  // its entry ended it: nothing to tell
}

// The session's entry heard nothing for a while. A stage that holds the session says nothing (its
// entry's other checks go on); one that does not tells the sender it moved (it lost the session:
// a restart the mesh did not notice, a reclaim), and the entry re-routes at once. The entry only
// probes a route that has answered, so every stage of it took the start. An unknown session's
// entry is unknown: the answer goes to the sender only, and tells it nothing of other sessions.
void StageState::on_session_probe(const Origin& from, uint64_t id, const wire::SessionProbe&) {
  auto it = sessions_.find(id);
  if (it != sessions_.end()) {
    if (!from.is_peer(it->second.entry)) {
      drop_frame(*node_, from, fmt::format("session_probe for session {:x}, which only {} sends", id, it->second.entry));
    } else if (it->second.relayered) {  // its notice may have been lost
      send_to_node(it->second.entry, id, 0, wire::Error{wire::kRelayered, where() + ": holds other layers now"});
    }
    return;
  }
  // No log line: any member may send probes, as many as it likes.
  orphaned_.take(id);  // this answer is the notice
  send_to_node(from.id, id, 0, wire::Error{wire::kMoved, where() + ": does not hold the session"});
}

// A frame for a session this stage does not hold: dropped, but when the stage forgot the session
// because its entry was declared gone (or the session idled past kSessionIdleTimeout), the entry
// is told after all (discovery::OrphanedSessions).
void StageState::unknown_session(const Origin& from, uint64_t id, const char* what) {
  if (ended_.contains(id)) return;  // a late copy (a decode step's frames travel on both lanes)
  if (const auto entry = orphaned_.take(id)) {
    spdlog::info("session {:x}: {} came after it was dropped; telling its entry {}", id, what, *entry);
    send_to_node(*entry, id, 0, wire::Error{wire::kMoved, where() + ": " + discovery::orphan_notice(*entry)});
    return;
  }
  drop_frame(*node_, from, fmt::format("{} for session {:x}, which this stage does not hold", what, id));
}

// Looks for idle sessions while it holds any (kIdleCheck).
void StageState::added_session() {
  if (ticking_) return;
  ticking_ = true;
  self_->delayed_send(caf::actor_cast<StageActor>(self_), kIdleCheck, tick_atom::value);
}

void StageState::on_tick() {
  ticking_ = false;
  const auto now = node_->clock->now();
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (now - it->second.heard < kSessionIdleTimeout) {
      ++it;
      continue;
    }
    spdlog::info("session {:x} of entry {} reclaimed: nothing heard of it for {} s", it->first, it->second.entry,
                 std::chrono::duration_cast<std::chrono::seconds>(now - it->second.heard).count());
    orphaned_.add(it->first, it->second.entry);
    it = sessions_.erase(it);
  }
  if (!sessions_.empty()) added_session();
}

void StageState::on_step(const Origin& from, uint64_t id, const wire::Step& m) {
  Session* found = session_from(from, id, "a step", false);
  if (!found) return;
  Session& s = *found;
  if (m.pos < s.next_pos) return;  // its copy on the other lane came first
  try {
    if (s.fill) throw InputError("a step came before the kept positions were filled");
    queue(s, true, Pending{id, m.pos, 1, true, 0, m.token, {}});
  } catch (const std::exception& e) {
    fail(id, s.entry, e.what());
  }
}

void StageState::on_activations(const Origin& from, uint64_t id, const wire::Activations& m) {
  Session* found = session_from(from, id, "activations", false);
  if (!found) return;
  Session& s = *found;
  try {
    // Checked before its rows are allocated (queue checks the rest).
    if (m.count < 1 || m.count > Transformer::kMaxBatch) throw InputError("activations of " + std::to_string(m.count) + " rows");
    Pending p{id, m.pos, m.count, m.sample, m.compute_us, -1, {}};
    p.rows.resize(std::size_t(m.count) * node_->config->dim);
    m.unpack(p.rows.data(), node_->config->dim);
    queue(s, false, std::move(p));
  } catch (const std::exception& e) {
    fail(id, s.entry, e.what());
  }
}

// Rows for a session: at the position due, within its cache (discovery::input_problem).
// While a resumed session fills layers it gained, the rows due are those of its fill.
void StageState::check_input(const Session& s, bool tokens, int pos, int count) const {
  const int due = s.fill ? s.fill->pos : s.next_pos;
  const std::string problem = discovery::input_problem(first(), tokens, due, pos, count, s.cache->context(),
                                                       Transformer::kMaxBatch);
  if (!problem.empty()) throw InputError(problem);
}

// The compute of `count` rows begun at `t0`, into the metrics; returns it in microseconds.
uint64_t StageState::charge(int count, Clock::time_point t0) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(node_->clock->now() - t0).count();
  node_->metrics->stage_compute_ns.fetch_add(uint64_t(ns), std::memory_order_relaxed);
  node_->metrics->stage_positions.fetch_add(uint64_t(count), std::memory_order_relaxed);
  return uint64_t(ns) / 1000;
}

void StageState::emit(uint64_t id, Session& s, int pos, int count, bool sample, const float* rows, float* logits,
                      uint64_t compute_us) {
  s.next_pos = pos + count;
  if (!last()) {
    wire::Activations a = wire::Activations::pack(rows, count, node_->config->dim, node_->encoding);
    s.log.resize(row_bytes() * std::size_t(pos));
    s.log.insert(s.log.end(), a.data.begin(), a.data.end());
    a.pos = pos;
    a.sample = sample;
    a.compute_us = compute_us;
    // Rows the next stage kept (a resumed session) do not go on.
    const int skip = std::clamp(s.forward_from - pos, 0, count);
    if (skip == count) return;
    a.data.erase(a.data.begin(), a.data.begin() + std::ptrdiff_t(row_bytes() * std::size_t(skip)));
    a.pos += skip;
    a.count -= skip;
    send_to_node(s.next, id, ++s.seq, std::move(a));
    return;
  }
  if (!sample) return;
  const int token = s.sampler->sample(logits);
  send_to_node(s.entry, id, ++s.seq, wire::Sampled{pos + count, token, s.sampler->rng_state(), compute_us});
}

}  // namespace troupe::actors
