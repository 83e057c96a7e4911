// SessionActor: one completion that entered through this node. It runs run.c's generation loop
// (Generation) with the mesh as its forward pass: the prompt goes to the first stage, each token
// sampled by the last stage comes back here, is streamed to the client, and goes on to the first
// stage for the next position.
//
// When a stage of its route is lost or moves, the session takes a new route from the node and
// replays every token so far through it as one batch: the new stages rebuild their KV caches, the
// last stage's sampler resumes from the state the previous one reported with its last token, and
// generation goes on with the very tokens an undisturbed run would have sampled.
#include <spdlog/spdlog.h>

#include <optional>

#include "actors.hpp"
#include "messages.hpp"
#include "troupe/runtime/completion.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/generate.hpp"

namespace troupe::actors {

namespace {

struct SessionState {
  std::optional<Generation> generation;
  std::vector<wire::RouteStage> route;
  uint64_t id = 0;            // of the current attempt
  int attempt = 0;
  std::vector<int> fed;       // every token given to the first stage, in position order
  uint64_t rng_state = 0;     // the last stage's sampler after the last token
  bool started = false;  // the stages hold state for this session
  bool rerouting = false;
  std::string reroute_reason;
  bool over = false;
  uint64_t seq = 0;
  Clock::time_point t0, first_token;
  Clock::time_point step_sent;  // of the step in flight: its round trip, less compute, is network
  int prompt_tokens = 0;
};

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

caf::behavior session_actor(caf::event_based_actor* self, const NodeContext* node, Routes routes,
                            uint64_t id, std::string client_route, wire::GenerateRequest request,
                            std::vector<wire::RouteStage> first_route) {
  auto state = std::make_shared<SessionState>();
  state->t0 = node->clock->now();
  state->route = std::move(first_route);
  state->id = id;
  state->rng_state = request.sampling.seed;

  auto to_client = [=](wire::Body body) {
    self->send(routes.transport, reply_atom::value, client_route,
               wire::Message{id, ++state->seq, std::move(body)});
  };
  auto to_peer = [=](const std::string& address, wire::Body body) {
    send_to(self, node, routes, address, wire::Message{state->id, ++state->seq, std::move(body)});
  };
  auto end_on_stages = [=](const std::string& reason, const std::string& skip) {
    if (state->started) {
      for (const auto& stage : state->route) {
        if (stage.address != skip) to_peer(stage.address, wire::SessionEnd{reason});
      }
    }
    state->started = false;
  };
  auto close = [=](const std::string& reason, const std::string& skip) {
    state->over = true;
    end_on_stages(reason, skip);
    self->send(routes.node, ended_atom::value, id);
    self->quit();
  };
  auto fail = [=](int code, const std::string& message, const std::string& skip = {}) {
    if (state->over) return;
    spdlog::warn("session {:x} failed: {}", id, message);
    to_client(wire::Error{code, message});
    close(message, skip);
  };
  auto finish = [=] {
    const Generation& g = *state->generation;
    const auto now = node->clock->now();
    wire::Done done;
    done.stats.prompt_tokens = state->prompt_tokens;
    done.stats.generated_tokens = g.generated_tokens();
    done.stats.positions = g.positions();
    if (g.generated_tokens() > 0) {
      done.stats.first_token_ms = ms_between(state->t0, state->first_token);
      done.stats.decode_ms = ms_between(state->first_token, now);
    }
    done.stats.total_ms = ms_between(state->t0, now);
    done.finish_reason = finish_reason_name(g.finish_reason());
    to_client(done);
    close("done", {});
  };

  // Starts the session (again) on state->route: every token so far, one batch, with the sampler
  // where it was.
  auto start_on_route = [=] {
    wire::SessionStart start;
    start.entry = node->address;
    start.route = state->route;
    start.sampling = request.sampling;
    start.sampling.seed = state->rng_state;
    start.steps = state->generation->steps();
    start.tokens = state->fed;
    state->started = true;
    state->step_sent = {};  // a replay's round trip is not a hop's
    to_peer(state->route.front().address, std::move(start));
  };

  // Leaves the current route and asks the node for a live one (kRerouteTimeout at most). After a
  // stage said it moved, the node's view of the mesh may still show the old stage for a moment:
  // the request waits a little so that it does not bounce off the same stage again.
  auto reroute = [=](const std::string& why, const std::string& skip, bool moved) {
    if (state->over || state->rerouting) return;
    spdlog::info("session {:x}: {}; re-routing", id, why);
    state->reroute_reason = why;
    end_on_stages("re-routed", skip);
    state->rerouting = true;
    state->attempt++;
    state->id = id | (uint64_t(state->attempt & 0xFFF) << kAttemptShift);
    self->delayed_send(routes.node, moved ? std::chrono::milliseconds(100) : std::chrono::milliseconds(0),
                       reroute_atom::value, id);
    self->delayed_send(self, kRerouteTimeout, reroute_atom::value, state->attempt);
  };

  auto begin = [=] {
    const int seq_len = node->config->seq_len;
    try {
      PreparedCompletion p = prepare_completion(request, *node->tokenizer, seq_len);
      state->generation.emplace(*node->tokenizer, std::move(p.prompt), p.steps, seq_len,
                                std::move(p.options));
    } catch (const InputError& e) {
      fail(2, e.what());
      return;
    }
    Generation& g = *state->generation;
    state->prompt_tokens = static_cast<int>(g.prompt_tokens().size());
    if (!g.prompt_text().empty()) to_client(wire::Text{g.prompt_text()});
    if (g.done()) {
      finish();
      return;
    }
    state->fed.assign(g.input().begin(), g.input().end());
    if (state->route.empty()) {
      // The mesh is re-planning: the node hands over a route once one is live.
      state->rerouting = true;
      state->reroute_reason = "no live route when the session began";
      self->send(routes.node, reroute_atom::value, id);
      self->delayed_send(self, kRerouteTimeout, reroute_atom::value, state->attempt);
      return;
    }
    start_on_route();
  };

  auto sampled = [=](const wire::Sampled& m) {
    Generation& g = *state->generation;
    const int due = g.position() + static_cast<int>(g.input().size());
    if (m.pos != due) {
      fail(1, "the last stage sampled after position " + std::to_string(m.pos) + ", not " +
                  std::to_string(due));
      return;
    }
    if (g.generated_tokens() == 0) state->first_token = node->clock->now();
    state->rng_state = m.rng_state;
    node->metrics->tokens_generated.fetch_add(1, std::memory_order_relaxed);
    if (state->step_sent != Clock::time_point{}) {
      // A decode step's round trip: the route's hops (those that leave this node) and compute.
      uint64_t hops = 0;
      std::string at = node->address;
      for (const auto& st : state->route) {
        hops += st.address != at;
        at = st.address;
      }
      hops += at != node->address;
      const auto rtt = std::chrono::duration_cast<std::chrono::nanoseconds>(node->clock->now() - state->step_sent).count();
      const int64_t network = rtt - int64_t(m.compute_us) * 1000;
      if (hops > 0 && network > 0) {
        node->metrics->hops.fetch_add(hops, std::memory_order_relaxed);
        node->metrics->hop_ns.fetch_add(uint64_t(network), std::memory_order_relaxed);
      }
      state->step_sent = {};
    }
    const std::string text = g.accept(m.token);
    if (!text.empty()) to_client(wire::Text{text});
    if (g.done()) {
      finish();
      return;
    }
    state->fed.push_back(g.input()[0]);
    state->step_sent = node->clock->now();
    to_peer(state->route.front().address, wire::Step{g.position(), g.input()[0]});
  };

  self->send(self, init_atom::value);
  return {
      [=](init_atom) { begin(); },
      [=](wire_atom, const std::string&, const wire::Message& message) {
        if (state->over || state->rerouting || message.session != state->id) return;  // an earlier route's
        if (auto* m = std::get_if<wire::Sampled>(&message.body)) {
          sampled(*m);
        } else if (auto* m = std::get_if<wire::Error>(&message.body)) {
          if (m->code == wire::kMoved) {
            reroute(m->message, {}, true);
          } else {
            fail(1, m->message);
          }
        } else {
          spdlog::warn("session {:x} dropped an unexpected {} frame", id,
                       wire::type_name(message.type()));
        }
      },
      [=](peer_lost_atom, const std::string& address, const std::string& name) {
        if (state->rerouting) return;
        for (const auto& st : state->route) {
          if (st.address == address) {
            reroute("peer " + name + " (" + address + "), a stage of this session, was lost", address, false);
            return;
          }
        }
      },
      [=](reroute_atom, int attempt) {
        if (state->rerouting && attempt == state->attempt) {
          fail(1, "no route through the mesh for " +
                      std::to_string(std::chrono::seconds(kRerouteTimeout).count()) + " s");
        }
      },
      [=](route_atom, std::vector<wire::RouteStage> route, const std::string& problem) {
        if (state->over || !state->rerouting) return;
        if (route.empty()) {
          fail(1, state->reroute_reason + ", and no live member can take over: " + problem);
          return;
        }
        state->rerouting = false;
        state->route = std::move(route);
        start_on_route();
      },
      [=](route_gone_atom) {
        spdlog::info("session {:x}: its client went away", id);
        state->over = true;
        close("the client went away", {});
      },
      caf::after(kSessionStallTimeout) >>
          [=] {
            fail(1, "no answer from the stages for " +
                        std::to_string(std::chrono::seconds(kSessionStallTimeout).count()) + " s");
          },
  };
}

}  // namespace troupe::actors
