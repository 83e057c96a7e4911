// Several Mesh objects exchanging frames over an in-test bus with a virtual clock, for the tests
// of the mesh protocol's state machines (every frame is encoded and decoded, as on the wire).
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "troupe/discovery/mesh.hpp"
#include "troupe/protocol/wire.hpp"

namespace troupe::discovery::testing {

using namespace std::chrono_literals;

inline ModelCost cost(int layers, uint64_t layer_bytes = 100) {
  ModelCost c;
  c.n_layers = layers;
  c.layer_bytes = layer_bytes;
  return c;
}

// Several Mesh objects on a virtual clock; frames go through the codec and arrive on the next
// step unless the link is cut.
struct Bus {
  TimePoint now{};
  std::map<std::string, std::unique_ptr<Mesh>> nodes;
  std::set<std::string> down;
  std::function<bool(const std::string&, const std::string&)> cut = [](auto&, auto&) { return false; };
  std::vector<std::pair<std::string, wire::Message>> in_flight;
  int extra_steps = 0;  // frames sent wait this many steps more than one (a slow network)
  std::deque<std::vector<std::pair<std::string, wire::Message>>> waiting;  // by steps left
  std::map<std::string, std::vector<MemberChange>> changes;  // what each node reported, in order
  uint64_t seed = 1;

  // mem_budget: 0 for none; 1 byte holds no layer.
  Mesh& add(const std::string& address, std::vector<std::string> joins, uint64_t instance = 1, uint64_t mem_budget = 0) {
    wire::MemberInfo info;
    info.mem_budget = mem_budget;
    info.name = "n" + address.substr(address.rfind(':') + 1);
    info.address = address;
    info.instance = instance;
    info.model = "m";
    info.model_layers = 6;
    info.throughput = 1;
    MeshConfig config;
    config.cost = cost(6);
    auto mesh = std::make_unique<Mesh>(info, config, seed++, now);
    mesh->join(joins, now);
    Mesh& m = *mesh;
    nodes[address] = std::move(mesh);
    down.erase(address);
    return m;
  }

  // Members h:1..h:n, each joining through h:1.
  void start(int n) {
    for (int i = 1; i <= n; i++) add("h:" + std::to_string(i), i == 1 ? std::vector<std::string>{} : std::vector<std::string>{"h:1"});
  }

  void step() {
    auto deliveries = std::exchange(in_flight, {});
    if (!waiting.empty()) {
      in_flight = std::move(waiting.front());
      waiting.pop_front();
    }
    for (auto& [to, message] : deliveries) {
      if (down.count(to) || !nodes.count(to)) continue;
      const wire::Message back = wire::decode(wire::encode(message));
      if (auto* g = std::get_if<wire::Gossip>(&back.body)) {
        nodes[to]->receive(*g, now);
      } else if (auto* p = std::get_if<wire::PlanAnnounce>(&back.body)) {
        nodes[to]->receive(*p, now);
      }
    }
    now += 25ms;
    for (auto& [address, node] : nodes) {
      if (down.count(address)) continue;
      node->tick(now);
      for (auto& out : node->take_outgoing()) {
        const std::string from = address;
        if (cut(from, out.to)) continue;
        if (extra_steps == 0) {
          in_flight.push_back({out.to, wire::Message{0, 0, out.body}});
        } else {
          if (int(waiting.size()) < extra_steps) waiting.resize(std::size_t(extra_steps));
          waiting[std::size_t(extra_steps - 1)].push_back({out.to, wire::Message{0, 0, out.body}});
        }
      }
      for (auto& c : node->take_changes()) changes[address].push_back(std::move(c));
      // The host's part: hold what the plan assigns at once.
      if (node->assignment() != node->membership().self().layers) node->set_loaded(node->assignment());
    }
  }
  // A frame from outside the bus (a member gone bad), delivered on the next step.
  void inject(const std::string& to, wire::Body body) { in_flight.push_back({to, wire::Message{0, 0, std::move(body)}}); }
  void run(std::chrono::milliseconds d) {
    const TimePoint end = now + d;
    while (now < end) step();
  }
  std::vector<std::string> coordinators() const {
    std::vector<std::string> out;
    for (const auto& [address, node] : nodes) {
      if (!down.count(address) && node->is_coordinator()) out.push_back(address);
    }
    return out;
  }
  wire::MemberState state_seen(const std::string& by, const std::string& of) const {
    const auto& members = nodes.at(by)->membership().members();
    auto it = members.find(of);
    return it == members.end() ? wire::MemberState::dead : it->second.state;
  }
  // Whether `by` holds `of` as a member that answered its probes (not a mere candidate).
  bool verified(const std::string& by, const std::string& of) const {
    const auto& members = nodes.at(by)->membership().members();
    auto it = members.find(of);
    return it != members.end() && it->second.verified;
  }
};

}  // namespace troupe::discovery::testing
