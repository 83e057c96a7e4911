// Sessions in the simulator. The entry side mirrors actors/src/session_actor.cpp and the parts of
// actors/src/node_actor.cpp that serve it, rule for rule; the stage side mirrors
// actors/src/stage_actor.cpp, with a hash of the tokens standing for the KV cache and a seeded
// hash for the model. A later step can make one shared session state machine of these and the
// actors (docs/sim.md).
#include <algorithm>

#include "world.hpp"

namespace troupe::sim {

namespace {

// As actors/src/actors.hpp.
constexpr Nanos kSessionStallTimeout = 120s;
constexpr Nanos kRerouteTimeout = 60s;
constexpr Nanos kMovedWait = 100ms;
// A client whose entry node refuses it (no plan could cover the model, busy, gone) tries another one after:
constexpr Nanos kClientRetry = 1s;

uint64_t stage_key(int session, uint32_t epoch) { return uint64_t(uint32_t(session)) << 32 | epoch; }

constexpr int kMaxBatch = 64;  // Transformer::kMaxBatch

// Frame sizes as the codec would make them, near enough for the bandwidth model.
constexpr uint64_t kEnvelope = 24;

}  // namespace

// --- the client and the entry node ---------------------------------------------------------------

void World::activity(SimSession& s) {
  s.last_activity = now_;
  if (!s.stall_check_pending) {
    s.stall_check_pending = true;
    schedule(now_ + kSessionStallTimeout, EventKind::stall_check, s.index);
  }
}

void World::client_retry(SimSession& s, const std::string& why) {
  s.error = why;
  if (now_ + kClientRetry > end_) {
    fail_session(s, why);  // the scenario is over: the client gives up with the last answer
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
  // node_actor.cpp's generate(): refuse when no plan could cover the model, or busy; with no live
  // route but one to come (a re-plan loading), the session waits for it.
  const auto route = n.mesh->route();
  if (route.empty() && !n.mesh->could_cover()) {
    client_retry(s, "the mesh at " + n.name + " cannot serve yet: " + n.mesh->route_problem());
    return;
  }
  if (n.entries.size() >= std::size_t(wire::kMaxSessions)) {
    client_retry(s, n.name + " is busy");
    return;
  }
  s.outcome = SimSession::Outcome::running;
  s.entry = entry;
  s.entry_generation = n.generation;
  s.tries++;
  n.entries.push_back(s.index);
  s.route.clear();
  s.stages.clear();
  for (const auto& st : route) {
    s.route.push_back({st.address, st.layers});
    s.stages.push_back(st.address);
  }
  s.epoch++;
  s.fed = s.prompt;
  s.generated.clear();
  s.rng_state = s.seed;
  s.started = s.rerouting = s.waiting_route = false;
  trace("session_start", s.index, entry, std::to_string(s.tries));
  activity(s);
  if (route.empty()) {
    // session_actor.cpp's begin(): no live route yet; ask the node for one (as a re-route does).
    s.rerouting = true;
    s.reroute_reason = "no live route when the session began";
    schedule(now_, EventKind::ask_route, s.index, uint64_t(s.attempt));
    schedule(now_ + kRerouteTimeout, EventKind::reroute_timeout, s.index, uint64_t(s.attempt));
    return;
  }
  start_on_route(s);
}

void World::start_on_route(SimSession& s) {
  DataFrame f;
  f.kind = DataFrame::Kind::start;
  f.from = f.entry = s.entry;
  f.to = by_address_.at(s.route.front().address);
  f.session = s.index;
  f.epoch = s.epoch;
  f.tokens = s.fed;
  f.route = s.route;
  f.rng = s.rng_state;
  f.bytes = kEnvelope + 64 + 4 * f.tokens.size() + 24 * f.route.size();
  s.started = true;
  send_data(std::move(f));
}

void World::end_on_stages(SimSession& s, const std::string& skip) {
  if (s.started) {
    for (const auto& st : s.route) {
      if (st.address == skip) continue;
      DataFrame f;
      f.kind = DataFrame::Kind::end;
      f.from = s.entry;
      f.to = by_address_.at(st.address);
      f.session = s.index;
      f.epoch = s.epoch;
      f.bytes = kEnvelope + 16;
      send_data(std::move(f));
    }
  }
  s.started = false;
}

void World::close_session(SimSession& s, SimSession::Outcome outcome) {
  if (s.entry >= 0) std::erase(nodes_[s.entry]->entries, s.index);
  s.outcome = outcome;
  s.rerouting = s.waiting_route = false;
  trace(outcome == SimSession::Outcome::completed ? "session_done" : "session_failed", s.index,
        int64_t(s.generated.size()), s.error);
  check_session_end(s);
}

void World::fail_session(SimSession& s, const std::string& message, const std::string& skip) {
  if (s.outcome == SimSession::Outcome::completed || s.outcome == SimSession::Outcome::failed) return;
  s.error = message;
  end_on_stages(s, skip);
  close_session(s, SimSession::Outcome::failed);
}

void World::finish_session(SimSession& s) {
  s.error.clear();
  end_on_stages(s, {});
  close_session(s, SimSession::Outcome::completed);
}

void World::reroute(SimSession& s, const std::string& why, const std::string& skip, bool moved) {
  if (s.outcome != SimSession::Outcome::running || s.rerouting) return;
  trace("reroute", s.index, s.attempt + 1, why);
  s.reroute_reason = why;
  end_on_stages(s, skip);
  s.rerouting = true;
  s.attempt++;
  s.epoch++;
  schedule(now_ + (moved ? kMovedWait : Nanos(0)), EventKind::ask_route, s.index, uint64_t(s.attempt));
  schedule(now_ + kRerouteTimeout, EventKind::reroute_timeout, s.index, uint64_t(s.attempt));
}

void World::entry_receive(SimSession& s, const DataFrame& f) {
  activity(s);
  if (s.rerouting || f.epoch != s.epoch) return;  // an earlier route's
  if (f.kind == DataFrame::Kind::error) {
    if (f.code == wire::kMoved) {
      reroute(s, f.message, {}, true);
    } else {
      fail_session(s, f.message);
    }
    return;
  }
  const int due = int(s.fed.size());
  if (f.pos != due) {
    fail_session(s, "the last stage sampled after position " + std::to_string(f.pos) + ", not " + std::to_string(due));
    return;
  }
  s.rng_state = f.rng;
  s.generated.push_back(f.token);
  if (int(s.generated.size()) >= scenario_.workload.gen_tokens) {
    finish_session(s);
    return;
  }
  s.fed.push_back(f.token);
  DataFrame step;
  step.kind = DataFrame::Kind::step;
  step.from = s.entry;
  step.to = by_address_.at(s.route.front().address);
  step.session = s.index;
  step.epoch = s.epoch;
  step.pos = int(s.fed.size()) - 1;
  step.count = 1;
  step.tokens = {f.token};
  step.bytes = kEnvelope + 16;
  send_data(std::move(step));
}

void World::entry_peer_lost(SimSession& s, const std::string& address, const std::string& name) {
  activity(s);
  if (s.rerouting) return;
  for (const auto& st : s.route) {
    if (st.address == address) {
      reroute(s, "peer " + name + " (" + address + "), a stage of this session, was lost", address, false);
      return;
    }
  }
}

// node_actor.cpp's reroute_atom: a route now, or a wait for one, or nothing to wait for.
void World::ask_route(SimSession& s, int attempt) {
  if (s.outcome != SimSession::Outcome::running || attempt != s.attempt) return;
  SimNode& n = *nodes_[s.entry];
  if (n.mesh->route().empty() && !n.mesh->could_cover()) {
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
  if (s.outcome != SimSession::Outcome::running || !s.rerouting) return;
  if (route.empty()) {
    fail_session(s, s.reroute_reason + ", and no live member can take over: " + problem);
    return;
  }
  s.rerouting = false;
  s.route.clear();
  for (const auto& st : route) s.route.push_back({st.address, st.layers});
  start_on_route(s);
}

void World::reroute_timeout(SimSession& s, int attempt) {
  if (s.outcome != SimSession::Outcome::running) return;
  activity(s);
  if (s.rerouting && attempt == s.attempt) {
    fail_session(s, "no route through the mesh for " + std::to_string(kRerouteTimeout.count() / 1000000000) + " s");
  }
}

void World::stall_check(SimSession& s) {
  s.stall_check_pending = false;
  if (s.outcome != SimSession::Outcome::running) return;
  if (now_ - s.last_activity >= kSessionStallTimeout) {
    fail_session(s, "no answer from the stages for " + std::to_string(kSessionStallTimeout.count() / 1000000000) + " s");
    return;
  }
  s.stall_check_pending = true;
  schedule(s.last_activity + kSessionStallTimeout, EventKind::stall_check, s.index);
}

void World::entry_lost(SimNode& n) {
  // Its sessions die with it; their clients see the connection drop and ask another node.
  for (int id : n.entries) {
    SimSession& s = sessions_[id];
    s.outcome = SimSession::Outcome::waiting;
    s.entry = -1;
    s.started = s.rerouting = s.waiting_route = false;
    s.attempt++;
    s.epoch++;
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
      if (it != n.stage_sessions.end()) return;  // started twice: dropped
      std::size_t i = 0;
      while (n.loaded && i < f.route.size() && !(f.route[i].address == n.address && f.route[i].layers == *n.loaded)) i++;
      if (!n.loaded || i == f.route.size()) {
        stage_error(n, f, wire::kMoved, n.name + " does not hold the session's layers");
        return;
      }
      const bool first = n.loaded->begin == 0, last = n.loaded->end == model_.config.n_layers;
      if ((i == 0) != first || (i + 1 == f.route.size()) != last) {
        stage_error(n, f, 1, n.name + ": the session's route does not fit this stage");
        return;
      }
      if (first != !f.tokens.empty()) {
        stage_error(n, f, 1, n.name + ": the session's prompt is malformed");
        return;
      }
      StageSession ss;
      ss.entry = f.entry;
      ss.route = f.route;
      ss.index = i;
      ss.rng = f.rng;
      ss.peers.push_back(nodes_[f.entry]->address);
      for (const auto& st : f.route) {
        if (st.address != n.address) ss.peers.push_back(st.address);
      }
      it = n.stage_sessions.emplace(key, std::move(ss)).first;
      if (!last) {  // the next stage learns of the session before its first activations
        DataFrame next = f;
        next.tokens.clear();
        next.from = n.index;
        next.to = by_address_.at(f.route[i + 1].address);
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
      if ((f.kind == DataFrame::Kind::step) != (it->second.index == 0) || f.pos != it->second.accepted) {
        const StageSession ss = it->second;
        n.stage_sessions.erase(it);
        DataFrame at = f;
        at.entry = ss.entry;
        stage_error(n, at, 1, n.name + ": positions " + std::to_string(f.pos) + " arrived after " +
                                  std::to_string(ss.accepted));
        return;
      }
      it->second.accepted += int(f.tokens.size());
      compute(n, f);
      return;
    case DataFrame::Kind::end:
      if (it != n.stage_sessions.end()) n.stage_sessions.erase(it);
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
  std::erase_if(n.stage_sessions, [&](const auto& kv) {
    const auto& peers = kv.second.peers;
    const bool lost = std::find(peers.begin(), peers.end(), address) != peers.end();
    if (lost) trace("stage_dropped", n.index, int64_t(kv.first >> 32), address);
    return lost;
  });
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
