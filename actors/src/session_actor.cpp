// SessionActor: one completion that entered through this node. It hosts the session's protocol
// (discovery::EntrySession: the route, the tokens fed so far, re-routing and replay) and runs
// run.c's generation loop (Generation) with the mesh as its forward pass: the prompt goes to the
// first stage, each token sampled by the last stage comes back here, is streamed to the client,
// and goes on to the first stage for the next position.
#include <spdlog/spdlog.h>

#include <optional>

#include "actors.hpp"
#include "messages.hpp"
#include "troupe/model/error.hpp"
#include "troupe/text/completion.hpp"
#include "troupe/text/generate.hpp"

namespace troupe::actors {

namespace {

using discovery::EntrySession;

struct SessionState {
  std::optional<Generation> generation;
  std::optional<EntrySession> protocol;
  uint64_t seq = 0;
  Clock::time_point t0, first_token;
  Clock::time_point step_sent;  // of the step in flight: its round trip, less compute, is network
  int prompt_tokens = 0;
};

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The id the stages know the session by on `attempt`: frames of an earlier attempt are told apart.
uint64_t attempt_id(uint64_t id, int attempt) { return id | (uint64_t(attempt & 0xFFF) << kAttemptShift); }

// The route's hops that leave the entry node and come back to it.
uint64_t hops_of(const std::vector<wire::RouteStage>& route, const std::string& entry) {
  uint64_t hops = 0;
  std::string at = entry;
  for (const auto& st : route) {
    hops += st.address != at;
    at = st.address;
  }
  return hops + (at != entry);
}

}  // namespace

caf::behavior session_actor(caf::event_based_actor* self, const NodeContext* node, Routes routes,
                            uint64_t id, std::string client_route, wire::GenerateRequest request,
                            std::vector<wire::RouteStage> first_route) {
  auto state = std::make_shared<SessionState>();
  state->t0 = node->clock->now();

  auto to_client = [=](wire::Body body) {
    self->send(routes.transport, reply_atom::value, client_route,
               wire::Message{id, ++state->seq, std::move(body)});
  };
  auto close = [=] {
    self->send(routes.node, ended_atom::value, id);
    self->quit();
  };
  auto finish_reply = [=] {
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
  };

  // Carries out what the protocol decided.
  auto act = [=](EntrySession::Actions actions) {
    for (auto& action : actions) {
      if (auto* a = std::get_if<EntrySession::Start>(&action)) {
        wire::SessionStart start;
        start.entry = node->address;
        start.route = std::move(a->route);
        start.sampling = request.sampling;
        start.sampling.seed = a->rng_state;
        start.steps = state->generation->steps();
        start.tokens = std::move(a->tokens);
        state->step_sent = {};  // a replay's round trip is not a hop's
        send_to(self, node, routes, a->to, wire::Message{attempt_id(id, a->attempt), ++state->seq, std::move(start)});
      } else if (auto* a = std::get_if<EntrySession::Step>(&action)) {
        state->step_sent = node->clock->now();
        send_to(self, node, routes, a->to,
                wire::Message{attempt_id(id, a->attempt), ++state->seq, wire::Step{a->pos, a->token}});
      } else if (auto* a = std::get_if<EntrySession::End>(&action)) {
        send_to(self, node, routes, a->to,
                wire::Message{attempt_id(id, a->attempt), ++state->seq, wire::SessionEnd{a->reason}});
      } else if (auto* a = std::get_if<EntrySession::AskRoute>(&action)) {
        spdlog::info("session {:x}: {}; re-routing", id, state->protocol->reroute_reason());
        self->delayed_send(routes.node, a->after_move ? discovery::kMovedWait : discovery::Millis(0),
                           reroute_atom::value, id);
        self->delayed_send(self, discovery::kRerouteTimeout, reroute_atom::value, a->attempt);
      } else if (auto* a = std::get_if<EntrySession::Fail>(&action)) {
        spdlog::warn("session {:x} failed: {}", id, a->message);
        to_client(wire::Error{a->code, a->message});
        close();
      }
    }
  };

  auto begin = [=] {
    const int seq_len = node->config->seq_len;
    try {
      PreparedCompletion p = prepare_completion(request, *node->tokenizer, seq_len);
      state->generation.emplace(*node->tokenizer, std::move(p.prompt), p.steps, seq_len,
                                std::move(p.options));
    } catch (const InputError& e) {
      spdlog::warn("session {:x} failed: {}", id, e.what());
      to_client(wire::Error{2, e.what()});
      close();
      return;
    }
    Generation& g = *state->generation;
    state->prompt_tokens = static_cast<int>(g.prompt_tokens().size());
    if (!g.prompt_text().empty()) to_client(wire::Text{g.prompt_text()});
    if (g.done()) {
      finish_reply();
      close();
      return;
    }
    state->protocol.emplace(std::vector<int>(g.input().begin(), g.input().end()), request.sampling.seed);
    act(state->protocol->begin(first_route));
  };

  auto sampled = [=](const wire::Sampled& m) {
    EntrySession& protocol = *state->protocol;
    if (auto failed = protocol.sampled(m.pos, m.rng_state); !failed.empty()) {
      act(std::move(failed));
      return;
    }
    Generation& g = *state->generation;
    if (g.generated_tokens() == 0) state->first_token = node->clock->now();
    node->metrics->tokens_generated.fetch_add(1, std::memory_order_relaxed);
    if (state->step_sent != Clock::time_point{}) {
      // A decode step's round trip: the route's hops (those that leave this node) and compute.
      const uint64_t hops = hops_of(protocol.route(), node->address);
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
      finish_reply();
      act(protocol.finish());
      close();
      return;
    }
    act(protocol.next(g.input()[0]));
  };

  self->send(self, init_atom::value);
  return {
      [=](init_atom) { begin(); },
      [=](wire_atom, const std::string&, const wire::Message& message) {
        if (!state->protocol) return;
        const int attempt = int((message.session & kAttemptMask) >> kAttemptShift);
        if (!state->protocol->expects(attempt)) return;  // an earlier route's
        if (auto* m = std::get_if<wire::Sampled>(&message.body)) {
          sampled(*m);
        } else if (auto* m = std::get_if<wire::Error>(&message.body)) {
          act(state->protocol->error(m->code, m->message));
        } else {
          spdlog::warn("session {:x} dropped an unexpected {} frame", id,
                       wire::type_name(message.type()));
        }
      },
      [=](peer_lost_atom, const std::string& address, const std::string& name) {
        if (state->protocol) act(state->protocol->peer_lost(address, name));
      },
      [=](reroute_atom, int attempt) {
        if (state->protocol) act(state->protocol->reroute_timeout(attempt));
      },
      [=](route_atom, std::vector<wire::RouteStage> route, const std::string& problem) {
        if (state->protocol) act(state->protocol->route_found(std::move(route), problem));
      },
      [=](route_gone_atom) {
        spdlog::info("session {:x}: its client went away", id);
        if (state->protocol) act(state->protocol->abandon("the client went away"));
        close();
      },
      caf::after(discovery::kSessionStallTimeout) >>
          [=] {
            if (state->protocol) act(state->protocol->stalled());
          },
  };
}

}  // namespace troupe::actors
