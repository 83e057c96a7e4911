// StageActor: the layer range this node holds, run for every session that passes through it.
// It loads the range the plan gives the node and releases the one it held; sessions of a
// released range are told their stage moved, and their entries re-route them.
//
// Per session it keeps the model's session state (StageModel::Session: its KV cache and
// scratch), the sampler when it holds the last layer, and where results go. Messages of one
// session arrive in order (each comes over one connection from one sender); the positions they
// carry are checked against the cache all the same, so a confused or hostile sender gets an
// error, never a write outside the cache.
#include <spdlog/spdlog.h>

#include <memory>
#include <optional>
#include <unordered_map>

#include "actors.hpp"
#include "messages.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/transformer.hpp"  // kMaxBatch
#include "troupe/text/sampler.hpp"

namespace troupe::actors {

namespace {

struct StageSession {
  std::unique_ptr<StageModel::Session> cache;
  std::optional<Sampler> sampler;  // the last stage's
  std::string entry;               // where sampled tokens and errors go
  std::string next;                // the next stage; empty for the last
  std::vector<std::string> peers;  // every node the session depends on
  std::vector<int> prompt;         // the first stage's: the tokens to run before the first step
  int next_pos = 0;                // the position the next input must start at
  uint64_t seq = 0;
};

struct StageState {
  Routes routes;
  std::shared_ptr<const StageModel> model;  // the weights of `layers`
  std::optional<LayerRange> layers;
  std::unordered_map<uint64_t, StageSession> sessions;
  discovery::EndedSessions ended;  // a start that comes after its session's end is dropped
  discovery::OrphanedSessions orphaned;  // forgotten when their entry was declared gone
  std::vector<float> x;  // the rows being computed (one message at a time)
};

}  // namespace

caf::behavior stage_actor(caf::event_based_actor* self, const NodeContext* node) {
  const ModelConfig& config = *node->config;
  auto state = std::make_shared<StageState>();
  auto first = [=] { return state->layers && state->layers->begin == 0; };
  auto last = [=] { return state->layers && state->layers->end == config.n_layers; };
  auto where = [=] {
    return "stage " + (state->layers ? discovery::format_range(*state->layers) : std::string("(none)")) +
           " on " + node->name;
  };
  state->x.resize(std::size_t(Transformer::kMaxBatch) * config.dim);
  state->routes.stage = caf::actor_cast<caf::actor>(self);

  // What the stage sends leaves once its device is done with the work so far
  // (discovery::SimHook::device_busy: at once on a real device).
  auto post = [=](const caf::actor& to, auto&&... xs) {
    const auto busy = node->sim_hook->device_busy();
    if (busy > busy.zero()) {
      self->delayed_send(to, busy, std::forward<decltype(xs)>(xs)...);
    } else {
      self->send(to, std::forward<decltype(xs)>(xs)...);
    }
  };
  auto send = [=](const std::string& to, uint64_t id, uint64_t seq, wire::Body body) {
    wire::Message m{id, seq, std::move(body)};
    if (to == node->address) {
      post(state->routes.local_handler(m.type()), wire_atom::value, std::string(), std::move(m));
    } else {
      post(state->routes.transport, send_atom::value, to, std::move(m));
    }
  };
  auto fail = [=](uint64_t id, const std::string& entry, const std::string& why) {
    spdlog::warn("session {:x}: {}", id, why);
    if (!entry.empty()) send(entry, id, 0, wire::Error{1, where() + ": " + why});
    state->sessions.erase(id);
  };

  // After forward_layers on `count` rows at `pos` (begun at `t0`; `upstream_us` of compute by
  // the stages before): on to the next stage, or (last stage) sample from the final row when
  // asked to. The compute time travels with the rows, so the entry can tell it from the network's.
  auto emit = [=](uint64_t id, StageSession& s, int pos, int count, bool sample, Clock::time_point t0,
                  uint64_t upstream_us) {
    s.next_pos = pos + count;
    auto spent = [&] {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(node->clock->now() - t0).count();
      node->metrics->stage_compute_ns.fetch_add(uint64_t(ns), std::memory_order_relaxed);
      node->metrics->stage_positions.fetch_add(uint64_t(count), std::memory_order_relaxed);
      return upstream_us + uint64_t(ns) / 1000;
    };
    if (!last()) {
      wire::Activations a =
          wire::Activations::pack(state->x.data(), count, config.dim, node->encoding);
      a.pos = pos;
      a.sample = sample;
      a.compute_us = spent();
      send(s.next, id, ++s.seq, std::move(a));
      return;
    }
    if (!sample) {
      spent();
      return;
    }
    float* row = state->x.data() + std::size_t(count - 1) * config.dim;
    const int token = s.sampler->sample(s.cache->logits(row));
    send(s.entry, id, ++s.seq, wire::Sampled{pos + count, token, s.sampler->rng_state(), spent()});
  };

  // A frame for a session this stage does not hold: dropped, but when the stage forgot the
  // session because its entry was declared gone, the entry is told after all
  // (discovery::OrphanedSessions).
  auto unknown_session = [=](uint64_t id, const char* what) {
    if (const auto entry = state->orphaned.take(id)) {
      spdlog::info("session {:x}: {} came after it was dropped; telling its entry {}", id, what, *entry);
      send(*entry, id, 0, wire::Error{wire::kMoved, where() + ": " + discovery::orphan_notice(*entry)});
      return;
    }
    spdlog::warn("dropped {} for unknown session {:x}", what, id);
  };

  // Rows for a session: at the position due, within its cache (discovery::input_problem).
  auto check_input = [=](const StageSession& s, bool tokens, int pos, int count) {
    const std::string problem = discovery::input_problem(first(), tokens, s.next_pos, pos, count,
                                                         s.cache->context(), Transformer::kMaxBatch);
    if (!problem.empty()) throw InputError(problem);
  };

  auto start = [=](uint64_t id, wire::SessionStart& m) {
    if (state->sessions.count(id)) {
      spdlog::warn("session {:x} started twice; the second start is dropped", id);
      return;
    }
    if (state->ended.contains(id)) {
      spdlog::info("session {:x} ended before it started here; its start is dropped", id);
      return;
    }
    const discovery::StageAdmission admission =
        discovery::admit_stage(node->address, state->layers, config.n_layers, state->sessions.size(),
                               m.entry, m.route, m.tokens.size(), m.steps);
    if (!admission.taken()) {
      send(m.entry, id, 0, wire::Error{admission.code, where() + ": " + admission.why});
      return;
    }
    StageSession s;
    try {
      s.cache = state->model->open(m.steps);
    } catch (const std::exception& e) {
      send(m.entry, id, 0, wire::Error{1, where() + ": " + e.what()});
      return;
    }
    if (last()) {
      s.sampler.emplace(config.vocab_size, m.sampling.temperature, m.sampling.topp, m.sampling.seed);
    }
    s.entry = m.entry;
    s.next = admission.next;
    s.peers = admission.peers;
    s.prompt = std::move(m.tokens);
    m.tokens.clear();
    StageSession& session = state->sessions.emplace(id, std::move(s)).first->second;
    // The next stage learns of the session before its first activations, over the same link.
    if (!last()) send(session.next, id, ++session.seq, m);
    if (!session.prompt.empty()) post(state->routes.stage, prefill_atom::value, id);
  };

  // The first stage runs a prompt (or a replay) one batch per message: steps of other sessions,
  // ends and loads that came meanwhile go first, so a long prompt never holds the stage for its
  // whole length, and what is left of an abandoned session's prompt never runs. The next stage
  // works on one batch while this one computes the following.
  auto prefill = [=](uint64_t id) {
    auto it = state->sessions.find(id);
    if (it == state->sessions.end()) return;  // ended or moved meanwhile
    StageSession& s = it->second;
    const int n = static_cast<int>(s.prompt.size()), at = s.next_pos;
    const int count = std::min(Transformer::kMaxBatch, n - at);
    try {
      const auto t0 = node->clock->now();
      for (int t = 0; t < count; t++) {
        s.cache->embed(s.prompt[at + t], state->x.data() + std::size_t(t) * config.dim);
      }
      s.cache->forward_layers(state->x.data(), count, at);
      emit(id, s, at, count, at + count == n, t0, 0);
    } catch (const std::exception& e) {
      fail(id, s.entry, e.what());
      return;
    }
    if (at + count < n) {
      post(state->routes.stage, prefill_atom::value, id);
    } else {
      s.prompt = {};
    }
  };

  auto step = [=](uint64_t id, const wire::Step& m) {
    auto it = state->sessions.find(id);
    if (it == state->sessions.end()) {
      unknown_session(id, "a step");
      return;
    }
    StageSession& s = it->second;
    try {
      check_input(s, true, m.pos, 1);
      const auto t0 = node->clock->now();
      s.cache->embed(m.token, state->x.data());
      s.cache->forward_layers(state->x.data(), 1, m.pos);
      emit(id, s, m.pos, 1, true, t0, 0);
    } catch (const std::exception& e) {
      fail(id, s.entry, e.what());
    }
  };

  auto activations = [=](uint64_t id, const wire::Activations& m) {
    auto it = state->sessions.find(id);
    if (it == state->sessions.end()) {
      unknown_session(id, "activations");
      return;
    }
    StageSession& s = it->second;
    try {
      check_input(s, false, m.pos, m.count);
      const auto t0 = node->clock->now();
      m.unpack(state->x.data(), config.dim);
      s.cache->forward_layers(state->x.data(), m.count, m.pos);
      emit(id, s, m.pos, m.count, m.sample, t0, m.compute_us);
    } catch (const std::exception& e) {
      fail(id, s.entry, e.what());
    }
  };

  auto report = [=] {
    const LayerRange r = state->layers.value_or(LayerRange{0, 0});
    post(state->routes.node, loaded_atom::value, r.begin, r.end);
  };

  // Holds `want` (none: nothing). Sessions of the range it releases move elsewhere: their
  // entries hear so and replay them on the new route. The old weights go before the new ones
  // come, so a small device never holds both.
  auto hold = [=](std::optional<LayerRange> want) {
    if (want == state->layers) {
      report();
      return;
    }
    for (const auto& [id, s] : state->sessions) {
      send(s.entry, id, 0, wire::Error{wire::kMoved, where() + " moved"});
    }
    state->sessions.clear();
    state->model.reset();
    state->layers.reset();
    if (want) {
      const auto t0 = node->clock->now();
      try {
        state->model = node->load_layers(*want);
        state->layers = want;
        spdlog::info("loaded layers {} in {:.0f} ms", discovery::format_range(*want),
                     std::chrono::duration<double, std::milli>(node->clock->now() - t0).count());
      } catch (const std::exception& e) {
        spdlog::error("cannot load layers {}: {}", discovery::format_range(*want), e.what());
      }
    } else {
      spdlog::info("released its layers");
    }
    report();
  };

  return {
      [=](init_atom, caf::actor transport, caf::actor node_actor) {
        state->routes.transport = std::move(transport);
        state->routes.node = std::move(node_actor);
        if (node->initial) {
          state->model = node->initial;
          state->layers = node->initial->layers();
          report();
        }
      },
      [=](prefill_atom, uint64_t id) { prefill(id); },
      [=](load_atom, int begin, int end) {
        hold(end > begin ? std::optional<LayerRange>(LayerRange{begin, end}) : std::nullopt);
      },
      [=](wire_atom, const std::string&, wire::Message& message) {
        const uint64_t id = message.session;
        if (auto* m = std::get_if<wire::SessionStart>(&message.body)) {
          start(id, *m);
        } else if (auto* m = std::get_if<wire::Step>(&message.body)) {
          step(id, *m);
        } else if (auto* m = std::get_if<wire::Activations>(&message.body)) {
          activations(id, *m);
        } else if (std::get_if<wire::SessionEnd>(&message.body)) {
          state->sessions.erase(id);
          state->ended.add(id);
          state->orphaned.take(id);  // its entry ended it: nothing to tell
        } else {
          spdlog::warn("stage dropped an unexpected {} frame", wire::type_name(message.type()));
        }
      },
      [=](peer_lost_atom, const std::string& address) {
        // Sessions that needed the lost peer cannot finish here; their entry re-routes them
        // (discovery::forget_notice says why it is told).
        for (auto it = state->sessions.begin(); it != state->sessions.end();) {
          const auto& peers = it->second.peers;
          if (std::find(peers.begin(), peers.end(), address) != peers.end()) {
            spdlog::info("session {:x} dropped: peer {} was lost", it->first, address);
            if (const auto notice = discovery::forget_notice(it->second.entry, address)) {
              send(it->second.entry, it->first, 0, wire::Error{wire::kMoved, where() + ": " + *notice});
            } else {
              state->orphaned.add(it->first, it->second.entry);
            }
            it = state->sessions.erase(it);
          } else {
            ++it;
          }
        }
      },
  };
}

}  // namespace troupe::actors
