#include "troupe/discovery/session.hpp"

#include "troupe/discovery/resume_plan.hpp"

#include <algorithm>
#include <utility>

namespace troupe::discovery {

Admission admit(const Mesh& mesh, std::size_t running_sessions) {
  const bool live = !mesh.route().empty();
  if (!live && !mesh.could_cover()) return Admission::cannot_cover;
  if (running_sessions >= std::size_t(wire::kMaxSessions)) return Admission::busy;
  return live ? Admission::serve : Admission::wait;
}

bool member_gone(const MemberChange& change) {
  return change.replaced || change.after == wire::MemberState::dead || change.after == wire::MemberState::left;
}

// --- EntrySession --------------------------------------------------------------------------------

namespace {
EntrySession::Actions one(EntrySession::Action action) {
  EntrySession::Actions out;
  out.push_back(std::move(action));
  return out;
}
}  // namespace

EntrySession::EntrySession(std::vector<int> input, uint64_t seed)
    : fed_(std::move(input)), rng_state_(seed) {}

EntrySession::Actions EntrySession::begin(std::vector<wire::RouteStage> route) {
  route_ = std::move(route);
  if (route_.empty()) {
    // The mesh is re-planning: the node hands over a route once one is live.
    rerouting_ = true;
    reroute_reason_ = "no live route when the session began";
    return one(AskRoute{false, attempt_});
  }
  return start_on_route();
}

EntrySession::Actions EntrySession::start_on_route() {
  started_ = true;
  answered_ = false;
  quiet_ = Millis(0);
  Actions out;
  Start start{route_.front().address, attempt_, route_, fed_, rng_state_, -1, 0, {}, {}};
  if (left_) resume_from_left(start, out);
  kept_ = start.kept;
  out.push_back(std::move(start));
  return out;
}

// The stages of the route left that are on the new one with layers overlapping those they held,
// and were not lost, keep the session's state: the start names them, and every position but the
// last one fed (whose sample is due); those whose layers moved and must take rows from before are
// named in `fill` (fill_stages). The others forget it.
void EntrySession::resume_from_left(Start& start, Actions& out) {
  std::vector<int> kept;
  std::vector<std::optional<LayerRange>> held(route_.size());
  for (std::size_t i = 0; i < route_.size(); i++) {
    const bool lost = std::find(lost_.begin(), lost_.end(), route_[i].address) != lost_.end();
    const auto was = std::find_if(left_->route.begin(), left_->route.end(),
                                  [&](const wire::RouteStage& s) { return s.address == route_[i].address; });
    if (lost || was == left_->route.end()) continue;
    if (route_[i].layers.shared(was->layers).size() == 0) continue;
    kept.push_back(int(i));
    held[i] = was->layers;
  }
  if (!kept.empty()) {
    start.resume_attempt = left_->attempt;
    start.resume_pos = int(fed_.size()) - 1;
    start.kept = kept;
    // A route covers the model: its last stage ends at the model's last layer.
    start.fill = fill_stages(route_, held, left_->route.back().layers.end);
  }
  end_left(out, "re-routed", kept);
}

// The stages of the route left forget the session, but for those kept (indices in route_).
void EntrySession::end_left(Actions& out, const std::string& reason, const std::vector<int>& kept) {
  if (!left_) return;
  for (const auto& stage : left_->route) {
    const bool is_kept = std::any_of(kept.begin(), kept.end(),
                                     [&](int i) { return route_[std::size_t(i)].address == stage.address; });
    if (!is_kept) out.push_back(End{stage.address, left_->attempt, reason});
  }
  left_.reset();
  lost_.clear();
}

void EntrySession::end_on_stages(Actions& out, const std::string& reason) {
  if (started_) {
    for (const auto& stage : route_) {
      out.push_back(End{stage.address, attempt_, reason});
    }
  }
  started_ = false;
}

EntrySession::Actions EntrySession::fail(int code, const std::string& message) {
  if (over_) return {};
  Actions out;
  end_on_stages(out, message);
  end_left(out, message);
  over_ = true;
  rerouting_ = false;
  out.push_back(Fail{code, message});
  return out;
}

// Leaves the current route and asks the node for a live one.
EntrySession::Actions EntrySession::reroute(const std::string& why, bool moved) {
  if (over_ || rerouting_) return {};
  Actions out;
  reroute_reason_ = why;
  // A route that answered holds the session's state at every stage: they keep it until the new
  // route is known, and those on it are kept (resume_from_left). Then every other stage of it
  // forgets the session, the lost one too: a stage declared dead that was not (it refutes its
  // death and comes back) would otherwise keep the session's cache for good, and after
  // wire::kMaxSessions of them refuse every session as busy (found by the simulator). A frame to
  // a stage that is really gone is simply lost. A route that never answered is ended at once.
  // A resumed route that has not answered yet holds the state in its kept stages only (the others
  // may be filling still): those may be kept again (a stage that heard of a restart after the
  // entry re-routes the session once more).
  if (started_ && (answered_ || !kept_.empty())) {
    left_ = Left{route_, attempt_};
    for (std::size_t i = 0; i < route_.size() && !answered_; i++) {
      if (std::find(kept_.begin(), kept_.end(), int(i)) == kept_.end()) lost_.push_back(route_[i].address);
    }
    started_ = false;
  } else {
    end_on_stages(out, "re-routed");
  }
  rerouting_ = true;
  attempt_++;
  out.push_back(AskRoute{moved, attempt_});
  return out;
}

EntrySession::Actions EntrySession::sampled(int pos, uint64_t rng_state) {
  const int due = int(fed_.size());
  if (pos != due) {
    return fail(1, "the last stage sampled after position " + std::to_string(pos) + ", not " +
                       std::to_string(due));
  }
  rng_state_ = rng_state;
  answered_ = true;
  quiet_ = Millis(0);
  return {};
}

EntrySession::Actions EntrySession::next(int token) {
  fed_.push_back(token);
  return one(Step{route_.front().address, attempt_, int(fed_.size()) - 1, token});
}

EntrySession::Actions EntrySession::finish() {
  Actions out;
  end_on_stages(out, "done");
  end_left(out, "done");
  over_ = true;
  return out;
}

EntrySession::Actions EntrySession::error(int code, const std::string& message, const std::string& from) {
  if (code != wire::kMoved && code != wire::kPeerGone && code != wire::kRelayered) return fail(1, message);
  Actions out = reroute(message, true);
  if (code == wire::kMoved) lost_.push_back(from);
  return out;
}

EntrySession::Actions EntrySession::peer_lost(const std::string& address, const std::string& name) {
  if (over_) return {};
  const auto on = [&](const std::vector<wire::RouteStage>& route) {
    return std::any_of(route.begin(), route.end(), [&](const auto& stage) { return stage.address == address; });
  };
  if (rerouting_) {
    if (left_ && on(left_->route)) lost_.push_back(address);
    return {};
  }
  if (!on(route_)) return {};
  Actions out = reroute("peer " + name + " (" + address + "), a stage of this session, was lost", false);
  lost_.push_back(address);
  return out;
}

EntrySession::Actions EntrySession::route_found(std::vector<wire::RouteStage> route,
                                                const std::string& problem) {
  if (over_ || !rerouting_) return {};
  if (route.empty()) return fail(1, reroute_reason_ + ", and no live member can take over: " + problem);
  rerouting_ = false;
  route_ = std::move(route);
  return start_on_route();
}

EntrySession::Actions EntrySession::reroute_timeout(int attempt) {
  if (!rerouting_ || attempt != attempt_) return {};
  return fail(1, "no route through the mesh for " +
                     std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kRerouteTimeout).count()) +
                     " s");
}

EntrySession::Actions EntrySession::quiet() {
  if (over_) return {};
  quiet_ += kProbeAfter;
  if (quiet_ >= kSessionStallTimeout) return stalled();
  Actions out;
  if (!started_ || !answered_ || rerouting_) return out;
  for (const auto& stage : route_) out.push_back(Probe{stage.address, attempt_, int(fed_.size())});
  return out;
}

EntrySession::Actions EntrySession::stalled() {
  return fail(1, "no answer from the stages for " +
                     std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kSessionStallTimeout).count()) +
                     " s");
}

EntrySession::Actions EntrySession::abandon(const std::string& reason) {
  if (over_) return {};
  Actions out;
  end_on_stages(out, reason);
  end_left(out, reason);
  over_ = true;
  return out;
}

// --- a stage -------------------------------------------------------------------------------------

StageAdmission admit_stage(const std::string& self, const std::optional<LayerRange>& held,
                           int n_layers, std::size_t sessions, const std::string& entry,
                           const std::vector<wire::RouteStage>& route, std::size_t prompt_tokens,
                           int steps) {
  StageAdmission a;
  auto refuse = [&](int code, std::string why) {
    a.code = code;
    a.why = std::move(why);
    return a;
  };
  if (sessions >= std::size_t(wire::kMaxSessions)) {
    return refuse(1, "busy: " + std::to_string(wire::kMaxSessions) + " sessions");
  }
  // This node's own place in the route: after a move it may hold the layers that the route gives
  // another node, which does not make it that stage.
  std::size_t i = 0;
  while (held && i < route.size() && !(route[i].address == self && route[i].layers == *held)) i++;
  if (!held || i == route.size()) {
    // The entry's view of the mesh is older than this stage's move: it re-routes.
    return refuse(wire::kMoved, "does not hold the session's layers");
  }
  const bool first = held->begin == 0, last = held->end == n_layers;
  if ((i == 0) != first || (i + 1 == route.size()) != last) {
    return refuse(1, "the session's route does not fit this stage");
  }
  if (first != (prompt_tokens > 0) || prompt_tokens > std::size_t(std::max(steps, 0))) {
    return refuse(1, "the session's prompt is malformed");
  }
  a.index = i;
  if (!last) a.next = route[i + 1].address;
  a.peers.push_back(entry);
  for (const auto& r : route) {
    if (r.address != self) a.peers.push_back(r.address);
  }
  return a;
}

std::string memory_refusal(uint64_t budget, uint64_t resident, uint64_t session_bytes, std::size_t sessions) {
  if (sessions == 0 || budget == 0 || resident == 0) return {};
  if (resident < budget && session_bytes <= budget - resident) return {};
  return "busy: its memory budget (" + std::to_string(budget >> 20) + " MiB) holds no more sessions now (" +
         std::to_string(sessions) + " running)";
}

std::optional<std::string> forget_notice(const std::string& entry, const std::string& gone) {
  if (entry == gone) return std::nullopt;
  return gone + ", which the session needs, is gone";
}

bool kept_at(const wire::SessionStart& start, const std::string& address) {
  if (start.resume == 0) return false;
  return std::any_of(start.kept.begin(), start.kept.end(), [&](int i) {
    return i >= 0 && std::size_t(i) < start.route.size() && start.route[std::size_t(i)].address == address;
  });
}

void EndedSessions::add(uint64_t id) {
  if (!ids_.insert(id).second) return;
  order_.push_back(id);
  if (order_.size() > capacity_) {
    ids_.erase(order_.front());
    order_.pop_front();
  }
}

void OrphanedSessions::add(uint64_t id, const std::string& entry) {
  if (!entries_.emplace(id, entry).second) return;
  order_.push_back(id);
  if (order_.size() > capacity_) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
}

std::optional<std::string> OrphanedSessions::take(uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return std::exchange(it->second, std::nullopt);  // the id stays, told, until its turn to go
}

std::string orphan_notice(const std::string& entry) {
  return "dropped the session when its entry " + entry + " was declared gone";
}

std::string input_problem(bool first, bool tokens, int next_pos, int pos, int count, int context,
                          int max_batch) {
  if (tokens && !first) return "a token arrived at a stage that does not embed";
  if (!tokens && first) return "activations arrived at the first stage";
  if (pos != next_pos) {
    return "position " + std::to_string(pos) + " arrived where " + std::to_string(next_pos) + " was due";
  }
  if (count < 1 || count > max_batch || pos + count > context) {
    return "positions " + std::to_string(pos) + "+" + std::to_string(count) + " do not fit the session's " +
           std::to_string(context);
  }
  return {};
}

}  // namespace troupe::discovery
