// Invariant 6, member views: what each live node's member table says of the others.
// - No live member stays suspect or dead in the view of a live node that it can reach both ways
//   for longer than `converge_within`: a false suspicion is refuted, a restarted node is heard of
//   again (checked every second, on the tables' suspects and dead only).
// - A node that left gracefully is `left`, not dead, at every live node that still lists it, once
//   its goodbye could reach someone (checked at the end).
// - Dead and left members are forgotten MembershipConfig::forget_dead after they went, by the
//   node's own clock (checked at the end).
#include <cstdio>
#include <unordered_map>
#include <unordered_set>

#include "world.hpp"

namespace troupe::sim {

namespace {

constexpr Nanos kEvery = std::chrono::seconds(1);
constexpr Nanos kForgetSlack = std::chrono::seconds(5);  // the forgetting runs on a node's ticks

class MemberViews final : public Checker {
 public:
  using Checker::Checker;

  void periodic() override {
    const Nanos now = world_.now();
    track_lives(now);
    if (now < next_) return;
    next_ = now + kEvery;
    std::unordered_map<uint64_t, Nanos> still;
    for (const auto& a : world_.nodes_) {
      if (a->life != SimNode::Life::up || !a->mesh) continue;
      const discovery::Membership& table = a->mesh->membership();
      for (const auto& [address, m] : table.suspects()) look(*a, address, now, still);
      for (const auto& address : table.dead()) look(*a, address, now, still);
    }
    stale_.swap(still);
  }

  void run_ended() override {
    for (const auto& a : world_.nodes_) {
      if (a->life != SimNode::Life::up || !a->mesh) continue;
      const discovery::TimePoint local = world_.local_time(*a);
      for (const auto& [address, m] : a->mesh->membership().members()) {
        if (!m.verified) continue;
        check_forgotten(*a, address, m, local);
        check_left(*a, address, m);
      }
    }
  }

 private:
  struct Life {
    uint64_t generation = ~0ull;
    Nanos up_since{0};
    bool reached_someone = false;  // while up, at the last check: it could send to a live node
  };

  void track_lives(Nanos now) {
    lives_.resize(world_.nodes_.size());
    for (const auto& n : world_.nodes_) {
      Life& l = lives_[n->index];
      if (l.generation != n->generation) {
        l.generation = n->generation;
        if (n->life == SimNode::Life::up) l.up_since = now;
      }
      if (n->life != SimNode::Life::up) continue;
      l.reached_someone = false;
      for (const auto& m : world_.nodes_) {
        if (m->index != n->index && m->life == SimNode::Life::up && !world_.blocked(n->index, m->index)) {
          l.reached_someone = true;
          break;
        }
      }
    }
  }

  // `a` lists `address` as suspect or dead: fine unless that node is up, has been for a while,
  // and the two reach each other.
  void look(const SimNode& a, const std::string& address, Nanos now, std::unordered_map<uint64_t, Nanos>& still) {
    const auto it = world_.by_address_.find(address);
    if (it == world_.by_address_.end()) return;
    const int b = it->second;
    if (!world_.up(b) || world_.blocked(a.index, b) || world_.blocked(b, a.index)) return;
    const uint64_t key = uint64_t(uint32_t(a.index)) << 32 | uint32_t(b);
    const auto seen = stale_.find(key);
    const Nanos since = std::max(seen == stale_.end() ? now : seen->second, lives_[b].up_since);
    still[key] = since;
    const Nanos bound = world_.scenario_.expect.converge_within;
    if (now - since <= bound || reported_.count(key)) return;
    reported_.insert(key);
    const auto& m = a.mesh->membership().members().at(address);
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s has seen %s as %s for %.1f s while it is up and they reach each other",
                  a.name.c_str(), world_.nodes_[b]->name.c_str(), wire::state_name(m.state),
                  double((now - since).count()) / 1e9);
    world_.violation(buf);
  }

  void check_forgotten(const SimNode& a, const std::string& address, const discovery::Member& m,
                       discovery::TimePoint local) {
    if (m.state != wire::MemberState::dead && m.state != wire::MemberState::left) return;
    const auto age = local - m.since;
    if (age <= world_.mesh_config_.membership.forget_dead + kForgetSlack) return;
    world_.violation(a.name + " still lists " + address + " " + std::string(wire::state_name(m.state)) + " after " +
                     std::to_string(std::chrono::duration_cast<std::chrono::seconds>(age).count()) + " s");
  }

  void check_left(const SimNode& a, const std::string& address, const discovery::Member& m) {
    const auto it = world_.by_address_.find(address);
    if (it == world_.by_address_.end()) return;
    const SimNode& b = *world_.nodes_[it->second];
    if (b.life != SimNode::Life::left || !lives_[b.index].reached_someone || m.state == wire::MemberState::left) return;
    world_.violation(a.name + " sees " + b.name + ", which left, as " + wire::state_name(m.state));
  }

  Nanos next_{0};
  std::vector<Life> lives_;
  std::unordered_map<uint64_t, Nanos> stale_;  // (viewer, viewed) -> since when, while it lasts
  std::unordered_set<uint64_t> reported_;  // pairs reported once
};

}  // namespace

std::unique_ptr<Checker> member_views_checker(World& world) { return std::make_unique<MemberViews>(world); }

}  // namespace troupe::sim
