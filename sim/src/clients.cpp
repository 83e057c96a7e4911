// The clients: each session is one client's completion request, sent to a random live node
// (any peer is an entry), its answer read from the replies as `troupe generate` reads them. A
// client whose entry refuses it (no plan yet, busy) or goes away tries another node. What the
// entry and the stages do with it is the actors' business.
#include <algorithm>

#include "stand_in_model.hpp"
#include "troupe/model/transformer.hpp"
#include "troupe/text/completion.hpp"
#include "troupe/text/generate.hpp"
#include "world.hpp"

namespace troupe::sim {

namespace {

// A client whose entry node refuses it tries another one after:
constexpr Nanos kClientRetry = 1s;

std::string client_route(const SimSession& s) { return "client " + std::to_string(s.index) + "." + std::to_string(s.tries); }

// A prompt of `tokens` tokens in the stand-in's vocabulary: BOS, the word boundary, and one byte
// token per letter (letters that start no piece of the vocabulary's).
std::string prompt_text(Rng& rng, int tokens) {
  std::string text;
  for (int i = 0; i < std::max(1, tokens - 2); i++) text += char('a' + rng.below(22));
  return text;
}

// The answer of one machine running the whole model, as `troupe run` would print it.
std::string answer_alone(const wire::GenerateRequest& request, const ModelPrice& model, const Tokenizer& tokenizer) {
  const int seq_len = model.config.seq_len, dim = model.config.dim;
  PreparedCompletion p = prepare_completion(request, tokenizer, seq_len);
  Generation g(tokenizer, std::move(p.prompt), p.steps, seq_len, std::move(p.options));
  const StandInModel whole(model, LayerRange{0, model.config.n_layers}, nullptr, {});
  const auto cache = whole.open(g.steps());
  Sampler sampler(model.config.vocab_size, request.sampling.temperature, request.sampling.topp, request.sampling.seed);
  std::vector<float> x(std::size_t(Transformer::kMaxBatch) * dim);
  std::string text = g.prompt_text();
  while (!g.done()) {
    const auto input = g.input();
    const int count = int(input.size());
    float* last = nullptr;
    for (int at = 0; at < count; at += Transformer::kMaxBatch) {
      const int n = std::min(Transformer::kMaxBatch, count - at);
      for (int t = 0; t < n; t++) cache->embed(input[at + t], x.data() + std::size_t(t) * dim);
      cache->forward_layers(x.data(), n, g.position() + at);
      last = x.data() + std::size_t(n - 1) * dim;
    }
    text += g.accept(sampler.sample(cache->logits(last)));
  }
  return text;
}

}  // namespace

void World::make_sessions() {
  const Workload& w = scenario_.workload;
  for (int i = 0; i < w.sessions; i++) {
    SimSession s;
    s.index = i;
    Rng rng{mix(seed_, 0x5e55 + uint64_t(i))};
    s.request.prompt = prompt_text(rng, w.prompt_tokens);
    s.request.sampling.temperature = 1.0f;
    s.request.sampling.topp = 0.9f;
    s.request.sampling.seed = rng.next() | 1;
    s.request.max_tokens = w.gen_tokens;
    s.reference = answer_alone(s.request, model_, tokenizer_);
    sessions_.push_back(std::move(s));
    schedule(w.first + i * w.every, EventKind::arrival, i);
  }
}

void World::client_retry(SimSession& s, const std::string& why) {
  s.outcome = SimSession::Outcome::waiting;
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
  s.outcome = SimSession::Outcome::running;
  s.entry = entry;
  s.tries++;
  s.text.clear();
  s.answered = false;
  trace("session_start", s.index, entry, std::to_string(s.tries));
  // The client sits beside its entry: its request arrives at once.
  const auto& events = n.process->transport.events();
  if (events.frame) events.frame(Origin::client(client_route(s)), wire::encode(wire::Message{0, 0, s.request}));
}

void World::client_reply(const std::string& route, Frame frame) {
  int index = 0, tries = 0;
  if (std::sscanf(route.c_str(), "client %d.%d", &index, &tries) != 2 || index < 0 ||
      index >= int(sessions_.size())) {
    return;
  }
  SimSession& s = sessions_[index];
  if (s.outcome != SimSession::Outcome::running || s.tries != tries) return;  // an earlier try's
  const wire::Message m = wire::decode(frame);
  if (const auto* t = std::get_if<wire::Text>(&m.body)) {
    s.text += t->text;
    s.answered = true;
  } else if (std::get_if<wire::Done>(&m.body)) {
    s.error.clear();
    close_session(s, SimSession::Outcome::completed);
  } else if (const auto* e = std::get_if<wire::Error>(&m.body)) {
    if (!s.answered) {  // refused before it began (a session's echo of the prompt comes first)
      trace("session_refused", s.index, s.entry, e->message);
      client_retry(s, e->message);
      return;
    }
    s.error = e->message;
    close_session(s, SimSession::Outcome::failed);
  }
}

void World::close_session(SimSession& s, SimSession::Outcome outcome) {
  s.outcome = outcome;
  trace(outcome == SimSession::Outcome::completed ? "session_done" : "session_failed", s.index,
        int64_t(s.text.size()), s.error);
  check_session_end(s);
}

void World::entry_lost(SimNode& n) {
  // Its sessions die with it; their clients see the connection drop and ask another node.
  for (auto& s : sessions_) {
    if (s.outcome != SimSession::Outcome::running || s.entry != n.index) continue;
    trace("session_lost_entry", s.index, n.index);
    client_retry(s, "the entry node " + n.name + " went away");
  }
}

}  // namespace troupe::sim
