// Invariant 4, first half: a session that completes answers exactly what one machine running
// the whole model answers (SimSession::reference), byte for byte.
#include "world.hpp"

namespace troupe::sim {

namespace {

class SessionAnswers final : public Checker {
 public:
  using Checker::Checker;

  void session_ended(SimSession& s) override {
    if (s.outcome != SimSession::Outcome::completed || s.text == s.reference) return;
    std::size_t k = 0;
    while (k < s.text.size() && k < s.reference.size() && s.text[k] == s.reference[k]) k++;
    world_.violation("session " + std::to_string(s.index) + " answered differently from one machine, from byte " +
                     std::to_string(k) + " of " + std::to_string(s.reference.size()));
  }
};

}  // namespace

std::unique_ptr<Checker> session_answers_checker(World& world) { return std::make_unique<SessionAnswers>(world); }

}  // namespace troupe::sim
