// The stage's passes: rows wait in the order they came, and each pass runs the rows ready from
// every session through the layers as one batch (discovery/batch_plan.hpp chooses them), reading
// the weights once for all. A pass is a message to the stage itself, so what came while the last
// one ran (other sessions' rows, ends, a new plan) is handled before it: a long prompt goes one
// batch a pass, and what is left of an abandoned session's never runs.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_set>

#include "stage_actor.hpp"
#include "troupe/discovery/batch_plan.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/transformer.hpp"  // kMaxBatch

namespace troupe::actors {

// Rows join the session's waiting ones at the position after them (discovery::input_problem),
// within its cache; a second copy of a waiting step (it travels on both lanes) is dropped.
void StageState::queue(Session& s, bool tokens, Pending p) {
  int due = s.fill ? s.fill->pos : s.next_pos;
  for (const Pending& q : pending_) {
    if (q.id != p.id) continue;
    if (tokens && q.pos == p.pos) return;
    due = q.pos + q.count;
  }
  const std::string problem = discovery::input_problem(first(), tokens, due, p.pos, p.count, s.cache->context(),
                                                       Transformer::kMaxBatch);
  if (!problem.empty()) throw InputError(problem);
  pending_.push_back(std::move(p));
  if (s.awaited) {
    s.loop = node_->clock->now() - s.sent_at;
    s.awaited = false;
  }
  if (waited_ && !rows_due_soon()) {  // the rows waited for are all here: the pass runs now
    self_->send(caf::actor_cast<StageActor>(self_), pass_atom::value, ++pass_ticket_);
    return;
  }
  schedule_pass();
}

// When the rows of the last pass's sessions are due back, if within a quarter of a pass: a pass
// waits for them. On one node the entry answers a sampled token in well under a millisecond, and
// a pass that ran without them would split the sessions into groups that take turns, each pass
// with half of them. Rows due back later (a pipeline's: through the other stages) or overdue are
// not waited for.
std::optional<Clock::time_point> StageState::rows_due_soon() const {
  const auto now = node_->clock->now();
  const auto horizon = now + last_pass_ / 4;
  std::optional<Clock::time_point> latest;
  for (const auto& [id, s] : sessions_) {
    if (!s.awaited || !s.loop) continue;
    const auto expected = s.sent_at + *s.loop;  // as long a round trip as the last one
    if (expected > horizon) continue;
    // Some slack for a late one: half its round trip, at least a thread's wake-up.
    const auto slack = std::max<Clock::time_point::duration>(*s.loop / 2, std::chrono::microseconds(200));
    const auto until = std::min(expected + slack, horizon);
    if (until > now) latest = std::max(latest.value_or(until), until);
  }
  return latest;
}

int StageState::prompt_left(const Session& s) const {
  const int at = s.fill ? s.fill->pos : s.next_pos;
  return s.relayered ? 0 : std::max(0, static_cast<int>(s.prompt.size()) - at);
}

// Each session's first waiting entry, in the order they came, then the prompts with rows left.
// Entries of sessions gone, moved to another id (resumed) or relayered are dropped.
std::vector<StageState::Candidate> StageState::candidates() {
  std::erase_if(pending_, [&](const Pending& p) {
    const auto it = sessions_.find(p.id);
    return it == sessions_.end() || it->second.relayered;
  });
  std::vector<Candidate> out;
  std::unordered_set<uint64_t> seen;
  for (Pending& p : pending_) {
    if (seen.insert(p.id).second) out.push_back({p.id, &sessions_.at(p.id), &p});
  }
  for (auto& [id, s] : sessions_) {
    if (!seen.count(id) && prompt_left(s) > 0) out.push_back({id, &s, nullptr});
  }
  return out;
}

// `count` rows of a candidate into x, embedded (tokens) or as they came; returns what they are.
// A step already run (its copy on the other lane) is dropped.
std::optional<StageState::Taken> StageState::take(const Candidate& c, int count, float* x) {
  Session& s = *c.session;
  const int dim = node_->config->dim;
  const int due = s.fill ? s.fill->pos : s.next_pos;
  s.heard = node_->clock->now();
  if (!c.pending) {
    for (int t = 0; t < count; t++) s.cache->embed(s.prompt[std::size_t(due + t)], x + std::size_t(t) * dim);
    return Taken{c.id, &s, due, count, due + count == static_cast<int>(s.prompt.size()), 0};
  }
  Pending& p = *c.pending;
  if (p.token >= 0 && p.pos < due) {
    p.count = 0;
    return std::nullopt;
  }
  check_input(s, p.token >= 0, p.pos, count);
  const Taken got{c.id, &s, p.pos, count, p.sample && count == p.count, p.upstream_us};
  if (p.token >= 0) {
    s.cache->embed(p.token, x);
  } else {
    const auto end = p.rows.begin() + std::ptrdiff_t(count) * dim;
    std::copy(p.rows.begin(), end, x);
    p.rows.erase(p.rows.begin(), end);
  }
  p.pos += count;
  p.count -= count;
  return got;
}

// A resumed session filling the layers it gained runs alone: those rows go through other layers
// than the batch's (take_fill). It is rare: once per resume.
void StageState::run_alone(const Candidate& c) {
  Session& s = *c.session;
  const int count = c.pending ? c.pending->count : std::min(Transformer::kMaxBatch, prompt_left(s));
  try {
    const auto t0 = node_->clock->now();
    if (const auto got = take(c, count, x_.data())) run_rows(c.id, s, got->pos, got->count, got->sample, t0, got->upstream_us);
  } catch (const std::exception& e) {
    fail(c.id, s.entry, e.what());
  }
}

void StageState::on_pass(uint64_t ticket) {
  if (ticket != pass_ticket_) return;  // a wait that ended early: its pass ran
  if (!waited_) {
    if (const auto until = rows_due_soon()) {
      waited_ = true;  // pass_due_ stays set: rows that come meanwhile join this pass
      self_->delayed_send(caf::actor_cast<StageActor>(self_), *until - node_->clock->now(), pass_atom::value,
                          ++pass_ticket_);
      return;
    }
  }
  waited_ = false;
  pass_due_ = false;
  std::vector<Candidate> batchable;
  std::vector<discovery::ReadyRows> ready;
  for (const Candidate& c : candidates()) {
    if (c.session->fill) {
      run_alone(c);
      continue;
    }
    const int rows = c.pending ? c.pending->count : prompt_left(*c.session);
    batchable.push_back(c);
    ready.push_back({rows, rows == 1});  // one row: a next token (or a prompt's last)
  }
  const auto t0 = node_->clock->now();
  std::vector<Taken> taken;
  int rows = 0;
  for (const discovery::PassTake& t : discovery::plan_pass(ready, Transformer::kMaxBatch)) {
    const Candidate& c = batchable[t.index];
    try {
      if (const auto got = take(c, t.rows, x_.data() + std::size_t(rows) * node_->config->dim)) {
        taken.push_back(*got);
        rows += got->count;
      }
    } catch (const std::exception& e) {
      fail(c.id, c.session->entry, e.what());
    }
  }
  if (!taken.empty()) finish_pass(taken, t0);
  std::erase_if(pending_, [](const Pending& p) { return p.count == 0; });  // taken whole: no later step sees them
  const bool more = !pending_.empty() ||
                    std::any_of(sessions_.begin(), sessions_.end(), [&](const auto& s) { return prompt_left(s.second) > 0; });
  if (more) schedule_pass();
}

// The rows taken through the layers as one batch, then each session's on (emit).
void StageState::finish_pass(const std::vector<Taken>& taken, Clock::time_point t0) {
  const int dim = node_->config->dim, vocab = node_->config->vocab_size;
  std::vector<StageModel::Rows> rows;
  int count = 0, sampled = 0;
  for (const Taken& t : taken) {
    rows.push_back({t.session->cache.get(), t.pos, t.count, t.sample && last()});
    count += t.count;
    sampled += rows.back().sample ? 1 : 0;
  }
  logits_.resize(std::size_t(sampled) * vocab);
  try {
    model_->forward_rows(x_.data(), rows, logits_.data());
  } catch (const std::exception& e) {
    for (const Taken& t : taken) fail(t.id, t.session->entry, e.what());
    return;
  }
  const uint64_t us = charge(count, t0);
  const auto done = node_->clock->now();
  last_pass_ = done - t0;
  node_->metrics->stage_passes.fetch_add(1, std::memory_order_relaxed);
  node_->metrics->stage_pass_sessions.fetch_add(taken.size(), std::memory_order_relaxed);
  const float* x = x_.data();
  float* logits = logits_.data();
  for (std::size_t i = 0; i < taken.size(); i++) {
    const Taken& t = taken[i];
    const float* rows_of_t = x;
    float* logits_of_t = rows[i].sample ? logits : nullptr;
    x += std::size_t(t.count) * dim;
    if (rows[i].sample) logits += vocab;
    try {
      emit(t.id, *t.session, t.pos, t.count, t.sample, rows_of_t, logits_of_t, t.upstream_us + us);
    } catch (const std::exception& e) {
      fail(t.id, t.session->entry, e.what());
      continue;
    }
    Session& s = *t.session;
    if (!s.prompt.empty() && s.next_pos >= static_cast<int>(s.prompt.size())) s.prompt = {};
    if (t.sample) {  // its next rows come once the token is sampled
      s.sent_at = done;
      s.awaited = true;
    }
  }
}

}  // namespace troupe::actors
