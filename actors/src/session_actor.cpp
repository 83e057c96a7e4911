// SessionActor: one completion that entered through this node. It runs run.c's generation loop
// (Generation) with the mesh as its forward pass: the prompt goes to the first stage, each token
// sampled by the last stage comes back here, is streamed to the client, and goes on to the first
// stage for the next position.
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
  bool started = false;  // the stages hold state for this session
  bool over = false;
  uint64_t seq = 0;
  Clock::time_point t0, first_token;
  int prompt_tokens = 0;
};

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

caf::behavior session_actor(caf::event_based_actor* self, const NodeContext* node, Routes routes,
                            uint64_t id, std::string client_route, wire::GenerateRequest request,
                            std::vector<wire::RouteStage> route) {
  auto state = std::make_shared<SessionState>();
  state->t0 = node->clock->now();

  auto to_client = [=](wire::Body body) {
    self->send(routes.transport, reply_atom::value, client_route,
               wire::Message{id, ++state->seq, std::move(body)});
  };
  auto to_peer = [=](const std::string& address, wire::Body body) {
    send_to(self, node, routes, address, wire::Message{id, ++state->seq, std::move(body)});
  };
  auto close = [=](const std::string& reason, const std::string& skip) {
    state->over = true;
    if (state->started) {
      for (const auto& stage : route) {
        if (stage.address != skip) to_peer(stage.address, wire::SessionEnd{reason});
      }
    }
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

  auto begin = [=] {
    const int seq_len = node->model->config.seq_len;
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
    wire::SessionStart start;
    start.entry = node->address;
    start.route = route;
    start.sampling = request.sampling;
    start.steps = g.steps();
    start.tokens.assign(g.input().begin(), g.input().end());
    state->started = true;
    to_peer(route.front().address, std::move(start));
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
    const std::string text = g.accept(m.token);
    if (!text.empty()) to_client(wire::Text{text});
    if (g.done()) {
      finish();
      return;
    }
    to_peer(route.front().address, wire::Step{g.position(), g.input()[0]});
  };

  self->send(self, init_atom::value);
  return {
      [=](init_atom) { begin(); },
      [=](wire_atom, const std::string&, const wire::Message& message) {
        if (state->over) return;
        if (auto* m = std::get_if<wire::Sampled>(&message.body)) {
          sampled(*m);
        } else if (auto* m = std::get_if<wire::Error>(&message.body)) {
          fail(1, m->message);
        } else {
          spdlog::warn("session {:x} dropped an unexpected {} frame", id,
                       wire::type_name(message.type()));
        }
      },
      [=](peer_lost_atom, const std::string& address, const std::string& name) {
        fail(1, "peer " + name + " (" + address + ") was lost; the session cannot go on", address);
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
