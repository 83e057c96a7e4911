// Invariant 2, convergence: after the last fault (or the end of the last timed one) all live
// nodes follow one plan (World::agreed_plan) and keep following it to the end, starting within
// `converge_within`. Also measures the summary's initial and worst convergence times.
#include <algorithm>
#include <cstdio>
#include <optional>

#include "world.hpp"

namespace troupe::sim {

namespace {

class Convergence final : public Checker {
 public:
  using Checker::Checker;

  void disturbed() override {
    last_disturbance_ = world_.now();
    disturbance_open_ = true;
  }

  void periodic() override {
    const Nanos now = world_.now();
    if (!world_.agreed_plan()) {
      agreed_since_.reset();
      return;
    }
    if (!agreed_since_) agreed_since_ = now;
    Summary& summary = world_.summary_;
    if (!formed_) {
      formed_ = true;
      disturbance_open_ = false;
      summary.initial_convergence_seconds = double(now.count()) / 1e9;
    } else if (disturbance_open_) {
      disturbance_open_ = false;
      summary.worst_convergence_seconds =
          std::max(summary.worst_convergence_seconds, double((now - last_disturbance_).count()) / 1e9);
    }
  }

  void run_ended() override {
    bool anyone = false;
    for (const auto& n : world_.nodes_) anyone |= n->life == SimNode::Life::up;
    if (!anyone) return;
    const Nanos within = world_.scenario_.expect.converge_within;
    if (!agreed_since_) {
      world_.violation("the live members do not agree on one plan at the end");
    } else if (*agreed_since_ > last_disturbance_ + within) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "the live members agreed on one plan %.1f s after the last fault, not within %.1f s",
                    double((*agreed_since_ - last_disturbance_).count()) / 1e9, double(within.count()) / 1e9);
      world_.violation(buf);
    }
  }

 private:
  Nanos last_disturbance_{0};
  bool disturbance_open_ = false;
  bool formed_ = false;  // the first agreement has been seen
  std::optional<Nanos> agreed_since_;
};

}  // namespace

std::unique_ptr<Checker> convergence_checker(World& world) { return std::make_unique<Convergence>(world); }

}  // namespace troupe::sim
