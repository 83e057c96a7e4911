// Sessions in the simulator, hosting the session protocol of discovery/session.hpp exactly as
// the actors do: the entry side (discovery::EntrySession, admit) as actors/src/session_actor.cpp
// and node_actor.cpp host it, the stage side (admit_stage, input_problem) as
// actors/src/stage_actor.cpp does, with a hash of the tokens standing for the KV cache and a
// seeded hash for the model. What is the simulator's own: the clients, the device's compute time,
// and frames' sizes.
#include <algorithm>

#include "world.hpp"

namespace troupe::sim {

namespace {

using discovery::EntrySession;

// A client whose entry node refuses it (no plan could cover the model, busy, gone) tries another one after:
constexpr Nanos kClientRetry = 1s;

uint64_t stage_key(int session, uint32_t epoch) { return uint64_t(uint32_t(session)) << 32 | epoch; }

constexpr int kMaxBatch = 64;  // Transformer::kMaxBatch

// Frame sizes as the codec would make them, near enough for the bandwidth model.
constexpr uint64_t kEnvelope = 24;

// Frames name the session's attempt on its current entry (as the actors' session ids do): the
// client's try in the high bits, the protocol's attempt in the low 12.
uint32_t epoch_of(const SimSession& s, int attempt) { return uint32_t(s.tries) << 12 | uint32_t(attempt & 0xFFF); }

}  // namespace

// --- the client and the entry node ---------------------------------------------------------------

void World::activity(SimSession& s) {
  s.last_activity = now_;
  if (!s.stall_check_pending) {
    s.stall_check_pending = true;
    schedule(now_ + discovery::kSessionStallTimeout, EventKind::stall_check, s.index);
  }
}

void World::client_retry(SimSession& s, const std::string& why) {
  s.error = why;
  if (now_ + kClientRetry > end_) {
    close_session(s, SimSession::Outcome::failed);  // the scenario is over: the client gives up with the last answer
    return;
  }
  schedule(now_ + kClientRetry, EventKind::arrival, s.index);
}

void World::session_arrival(SimSession& s) {
  if (s.outcome != SimSession::Outcome::waiting) return;
  const int entry = live_random();
  if (entry < 0) {
    client_retry(s, "no node is up");
    return;
  }
  SimNode& n = *nodes_[entry];
  switch (discovery::admit(*n.mesh, n.entries.size())) {
    case discovery::Admission::cannot_cover:
      client_retry(s, "the mesh at " + n.name + " cannot serve yet: " + n.mesh->route_problem());
      return;
    case discovery::Admission::busy:
      client_retry(s, n.name + " is busy");
      return;
    case discovery::Admission::serve:
    case discovery::Admission::wait:
      break;
  }
  const auto route = n.mesh->route();
  s.outcome = SimSession::Outcome::running;
  s.entry = entry;
  s.entry_generation = n.generation;
  s.tries++;
  n.entries.push_back(s.index);
  s.stages.clear();
  std::vector<wire::RouteStage> first;
  for (const auto& st : route) {
    first.push_back({st.address, st.layers});
    s.stages.push_back(st.address);
  }
  s.generated.clear();
  s.waiting_route = false;
  s.protocol.emplace(s.prompt, s.seed);
  trace("session_start", s.index, entry, std::to_string(s.tries));
  activity(s);
  act(s, s.protocol->begin(std::move(first)));
}

// Carries out what the session's protocol decided, as session_actor.cpp's act() does.
void World::act(SimSession& s, EntrySession::Actions actions) {
  // A frame from the entry to a stage of the session's attempt.
  auto frame = [&](DataFrame::Kind kind, const std::string& to, int attempt) {
    DataFrame f;
    f.kind = kind;
    f.from = f.entry = s.entry;
    f.to = by_address_.at(to);
    f.session = s.index;
    f.epoch = epoch_of(s, attempt);
    f.bytes = kEnvelope + 16;
    return f;
  };
  for (auto& action : actions) {
    if (auto* a = std::get_if<EntrySession::Start>(&action)) {
      DataFrame f = frame(DataFrame::Kind::start, a->to, a->attempt);
      f.tokens = std::move(a->tokens);
      f.route = std::move(a->route);
      f.rng = a->rng_state;
      f.bytes = kEnvelope + 64 + 4 * f.tokens.size() + 24 * f.route.size();
      send_data(std::move(f));
    } else if (auto* a = std::get_if<EntrySession::Step>(&action)) {
      DataFrame f = frame(DataFrame::Kind::step, a->to, a->attempt);
      f.pos = a->pos;
      f.count = 1;
      f.tokens = {a->token};
      send_data(std::move(f));
    } else if (auto* a = std::get_if<EntrySession::End>(&action)) {
      send_data(frame(DataFrame::Kind::end, a->to, a->attempt));
    } else if (auto* a = std::get_if<EntrySession::AskRoute>(&action)) {
      trace("reroute", s.index, a->attempt, s.protocol->reroute_reason());
      schedule(now_ + (a->after_move ? Nanos(discovery::kMovedWait) : Nanos(0)), EventKind::ask_route, s.index,
               uint64_t(a->attempt));
      schedule(now_ + discovery::kRerouteTimeout, EventKind::reroute_timeout, s.index, uint64_t(a->attempt));
    } else if (auto* a = std::get_if<EntrySession::Fail>(&action)) {
      s.error = a->message;
      close_session(s, SimSession::Outcome::failed);
    }
  }
}

void World::close_session(SimSession& s, SimSession::Outcome outcome) {
  if (s.entry >= 0) std::erase(nodes_[s.entry]->entries, s.index);
  s.outcome = outcome;
  s.waiting_route = false;
  trace(outcome == SimSession::Outcome::completed ? "session_done" : "session_failed", s.index,
        int64_t(s.generated.size()), s.error);
  check_session_end(s);
}

void World::entry_receive(SimSession& s, const DataFrame& f) {
  activity(s);
  if (f.epoch >> 12 != uint32_t(s.tries) || !s.protocol->expects(int(f.epoch & 0xFFF))) return;  // an earlier route's
  if (f.kind == DataFrame::Kind::error) {
    act(s, s.protocol->error(f.code, f.message));
    return;
  }
  if (auto failed = s.protocol->sampled(f.pos, f.rng); !failed.empty()) {
    act(s, std::move(failed));
    return;
  }
  s.generated.push_back(f.token);
  if (int(s.generated.size()) >= scenario_.workload.gen_tokens) {
    s.error.clear();
    act(s, s.protocol->finish());
    close_session(s, SimSession::Outcome::completed);
    return;
  }
  act(s, s.protocol->next(f.token));
}

void World::entry_peer_lost(SimSession& s, const std::string& address, const std::string& name) {
  activity(s);
  act(s, s.protocol->peer_lost(address, name));
}

// node_actor.cpp's reroute_atom: a route now, or a wait for one, or nothing to wait for.
void World::ask_route(SimSession& s, int attempt) {
  if (s.outcome != SimSession::Outcome::running || attempt != s.protocol->attempt()) return;
  SimNode& n = *nodes_[s.entry];
  if (discovery::admit(*n.mesh, 0) == discovery::Admission::cannot_cover) {
    route_handed(s, {}, n.mesh->route_problem());
    return;
  }
  s.waiting_route = true;
  hand_routes(n);
}

void World::hand_routes(SimNode& n) {
  bool any = false;
  for (int id : n.entries) any |= sessions_[id].waiting_route;
  if (!any) return;
  const auto route = n.mesh->route();
  if (route.empty()) return;
  for (int id : std::vector<int>(n.entries)) {
    SimSession& s = sessions_[id];
    if (!s.waiting_route) continue;
    s.waiting_route = false;
    s.stages.clear();
    for (const auto& st : route) s.stages.push_back(st.address);
    route_handed(s, route, {});
  }
}

void World::route_handed(SimSession& s, const std::vector<discovery::StageHolder>& route,
                         const std::string& problem) {
  activity(s);
  if (s.outcome != SimSession::Outcome::running) return;
  std::vector<wire::RouteStage> stages;
  for (const auto& st : route) stages.push_back({st.address, st.layers});
  act(s, s.protocol->route_found(std::move(stages), problem));
}

void World::reroute_timeout(SimSession& s, int attempt) {
  if (s.outcome != SimSession::Outcome::running) return;
  activity(s);
  act(s, s.protocol->reroute_timeout(attempt));
}

void World::stall_check(SimSession& s) {
  s.stall_check_pending = false;
  if (s.outcome != SimSession::Outcome::running) return;
  if (now_ - s.last_activity >= discovery::kSessionStallTimeout) {
    act(s, s.protocol->stalled());
    return;
  }
  s.stall_check_pending = true;
  schedule(s.last_activity + discovery::kSessionStallTimeout, EventKind::stall_check, s.index);
}

void World::entry_lost(SimNode& n) {
  // Its sessions die with it; their clients see the connection drop and ask another node.
  for (int id : n.entries) {
    SimSession& s = sessions_[id];
    s.outcome = SimSession::Outcome::waiting;
    s.entry = -1;
    s.waiting_route = false;
    s.protocol.reset();
    trace("session_lost_entry", s.index, n.index);
    client_retry(s, "the entry node " + n.name + " went away");
  }
  n.entries.clear();
}

// --- stages --------------------------------------------------------------------------------------

void World::deliver_data(int slot) {
  DataFrame f = std::move(data_[slot]);
  data_free_.push_back(slot);
  static const char* kinds[] = {"start", "step", "activations", "sampled", "error", "end"};
  trace("data", f.from, f.to, std::string(kinds[int(f.kind)]) + " " + std::to_string(f.session) + "." +
                                std::to_string(f.epoch) + " " + std::to_string(f.pos) + "+" + std::to_string(f.count));
  if (up(f.to) && blocked(f.from, f.to)) {  // cut while in flight: held until the link heals
    summary_.frames--;
    send_data(std::move(f));
    return;
  }
  if (!up(f.to)) {
    summary_.frames_lost++;
    return;
  }
  if (f.kind == DataFrame::Kind::sampled || f.kind == DataFrame::Kind::error) {
    SimSession& s = sessions_[f.session];
    if (s.outcome != SimSession::Outcome::running || s.entry != f.to ||
        nodes_[f.to]->generation != s.entry_generation) {
      return;  // the entry does not know the session (any more)
    }
    entry_receive(s, f);
    return;
  }
  stage_receive(*nodes_[f.to], f);
}

void World::stage_error(SimNode& n, const DataFrame& f, int code, const std::string& message) {
  DataFrame e;
  e.kind = DataFrame::Kind::error;
  e.from = n.index;
  e.to = f.entry;
  e.session = f.session;
  e.epoch = f.epoch;
  e.code = code;
  e.message = message;
  e.bytes = kEnvelope + 8 + message.size();
  send_data(std::move(e));
}

void World::stage_receive(SimNode& n, DataFrame& f) {
  const uint64_t key = stage_key(f.session, f.epoch);
  auto it = n.stage_sessions.find(key);
  switch (f.kind) {
    case DataFrame::Kind::start: {
      if (it != n.stage_sessions.end() || n.ended.contains(key)) return;  // started twice, or ended: dropped
      const discovery::StageAdmission admission =
          discovery::admit_stage(n.address, n.loaded, model_.config.n_layers, n.stage_sessions.size(),
                                 nodes_[f.entry]->address, f.route, f.tokens.size(), context());
      if (!admission.taken()) {
        stage_error(n, f, admission.code, n.name + ": " + admission.why);
        return;
      }
      const std::size_t i = admission.index;
      const bool first = i == 0, last = admission.next.empty();
      StageSession ss;
      ss.entry = f.entry;
      ss.route = f.route;
      ss.index = i;
      ss.rng = f.rng;
      ss.peers = admission.peers;
      it = n.stage_sessions.emplace(key, std::move(ss)).first;
      if (!last) {  // the next stage learns of the session before its first activations
        DataFrame next = f;
        next.tokens.clear();
        next.from = n.index;
        next.to = by_address_.at(admission.next);
        next.bytes = kEnvelope + 64 + 24 * next.route.size();
        send_data(std::move(next));
      }
      if (first) {
        f.pos = 0;
        it->second.accepted = int(f.tokens.size());
        compute(n, f);
      }
      return;
    }
    case DataFrame::Kind::step:
    case DataFrame::Kind::activations:
      if (it == n.stage_sessions.end()) return;  // dropped for an unknown session
      if (const std::string problem =
              discovery::input_problem(it->second.index == 0, f.kind == DataFrame::Kind::step, it->second.accepted,
                                       f.pos, f.count, context(), kMaxBatch);
          !problem.empty()) {
        const StageSession ss = it->second;
        n.stage_sessions.erase(it);
        DataFrame at = f;
        at.entry = ss.entry;
        stage_error(n, at, 1, n.name + ": " + problem);
        return;
      }
      it->second.accepted += int(f.tokens.size());
      compute(n, f);
      return;
    case DataFrame::Kind::end:
      if (it != n.stage_sessions.end()) n.stage_sessions.erase(it);
      n.ended.add(key);
      return;
    default:
      return;
  }
}

// Queues a batch for the device. As stage_actor.cpp, the first stage runs a prompt in batches of
// Transformer::kMaxBatch positions, passing each on as it is done.
void World::compute(SimNode& n, const DataFrame& f) {
  const int total = int(f.tokens.size());
  const bool prompt = f.kind == DataFrame::Kind::start;
  for (int at = 0; at < total; at += kMaxBatch) {
    const int count = std::min(kMaxBatch, total - at);
    DataFrame work;
    work.kind = DataFrame::Kind::activations;
    work.to = n.index;
    work.session = f.session;
    work.epoch = f.epoch;
    work.pos = f.pos + at;
    work.count = count;
    work.sample = prompt ? at + count == total : f.kind == DataFrame::Kind::step || f.sample;
    work.tokens.assign(f.tokens.begin() + at, f.tokens.begin() + at + count);
    const int slot = data_slot();
    data_[slot] = std::move(work);
    n.work.push_back(slot);
  }
  start_work(n);
}

// The device runs one batch at a time, in the order they came (the stage actor's mailbox); a
// batch whose session ended or moved meanwhile is dropped unrun, as the actor drops frames of
// unknown sessions.
void World::start_work(SimNode& n) {
  while (!n.computing && !n.work.empty()) {
    const int slot = n.work.front();
    n.work.pop_front();
    const DataFrame& w = data_[slot];
    auto it = n.stage_sessions.find(stage_key(w.session, w.epoch));
    if (it == n.stage_sessions.end() || !n.loaded) {
      data_free_.push_back(slot);
      continue;
    }
    const bool last = it->second.index + 1 == it->second.route.size();
    n.computing = true;
    schedule(now_ + stage_time(*n.profile, model_, *n.loaded, w.count, last && w.sample), EventKind::compute_done,
             slot, n.generation);
  }
}

void World::compute_done(int slot, uint64_t generation) {
  DataFrame w = std::move(data_[slot]);
  data_free_.push_back(slot);
  SimNode& n = *nodes_[w.to];
  if (n.generation != generation || !up(n.index)) return;
  n.computing = false;
  auto it = n.stage_sessions.find(stage_key(w.session, w.epoch));
  if (it != n.stage_sessions.end()) {
    StageSession& ss = it->second;
    ss.positions += w.count;
    for (int t : w.tokens) ss.context = fold(ss.context, t);
    DataFrame out;
    out.from = n.index;
    out.session = w.session;
    out.epoch = w.epoch;
    out.entry = ss.entry;
    if (ss.index + 1 == ss.route.size()) {
      if (w.sample) {
        out.kind = DataFrame::Kind::sampled;
        out.to = ss.entry;
        out.pos = ss.positions;
        out.token = sample(ss.rng, ss.context);
        out.rng = ss.rng;
        out.bytes = kEnvelope + 24;
        send_data(std::move(out));
      }
    } else {
      out.kind = DataFrame::Kind::activations;
      out.to = by_address_.at(ss.route[ss.index + 1].address);
      out.pos = w.pos;
      out.count = w.count;
      out.sample = w.sample;
      out.tokens = std::move(w.tokens);
      out.bytes = kEnvelope + 16 + uint64_t(out.count) * uint64_t(model_.config.dim) * 4;
      send_data(std::move(out));
    }
  }
  start_work(n);
}

void World::stage_peer_lost(SimNode& n, const std::string& address) {
  for (auto it = n.stage_sessions.begin(); it != n.stage_sessions.end();) {
    const auto& peers = it->second.peers;
    if (std::find(peers.begin(), peers.end(), address) == peers.end()) {
      ++it;
      continue;
    }
    trace("stage_dropped", n.index, int64_t(it->first >> 32), address);
    if (const auto notice = discovery::forget_notice(nodes_[it->second.entry]->address, address)) {
      DataFrame f;
      f.session = int(it->first >> 32);
      f.epoch = uint32_t(it->first);
      f.entry = it->second.entry;
      stage_error(n, f, wire::kMoved, n.name + ": " + *notice);
    }
    it = n.stage_sessions.erase(it);
  }
}

// stage_actor.cpp's hold(): sessions on the released range move (their entries replay them
// elsewhere); the old weights go before the new ones load; the mesh hears when loading is done.
void World::stage_hold(SimNode& n, std::optional<LayerRange> want) {
  if (want == n.loaded) {  // (none while a load is pending: that load is called off)
    n.loads++;
    n.mesh->set_loaded(n.loaded);
    return;
  }
  for (const auto& [key, ss] : n.stage_sessions) {
    DataFrame f;
    f.session = int(key >> 32);
    f.epoch = uint32_t(key);
    f.entry = ss.entry;
    stage_error(n, f, wire::kMoved, n.name + " moved");
  }
  n.stage_sessions.clear();
  n.loaded.reset();
  n.loads++;
  n.loading = want;
  if (!want) {
    n.mesh->set_loaded(std::nullopt);
    return;
  }
  n.load_free = std::max(now_, n.load_free) + load_time(*n.profile, model_, *want);
  schedule(n.load_free, EventKind::load_done, n.index, n.generation, n.loads);
}

void World::load_done(SimNode& n, uint64_t load) {
  if (load != n.loads) return;  // a later assignment replaced it
  n.loaded = n.loading;
  trace("loaded", n.index, n.loaded->begin, std::to_string(n.loaded->end));
  n.mesh->set_loaded(n.loaded);
  react(n);
}

}  // namespace troupe::sim
