// The simulated network: each node's SimTransport (troupe::Transport), and the links between
// nodes with their latency, jitter, bandwidth, loss, duplication, reordering and partitions.
#include <algorithm>

#include "world.hpp"

namespace troupe::sim {

namespace {

// Stores `item` in a free slot of `items` (growing it when none is free) and returns the slot:
// events name frames and tasks by slot, and slots are reused as events are handled.
template <typename T>
int store(std::vector<T>& items, std::vector<int>& free, T item) {
  if (free.empty()) {
    items.push_back(std::move(item));
    return int(items.size()) - 1;
  }
  const int slot = free.back();
  free.pop_back();
  items[slot] = std::move(item);
  return slot;
}

// A lost segment on a session's TCP connection costs a retransmission timeout, not the frame.
constexpr Nanos kRetransmit = 200ms;

}  // namespace

// --- a node's transport --------------------------------------------------------------------------

void SimTransport::send(const std::string& address, Frame frame, Lane lane) {
  if (stopped_) return;
  traffic_[0]++;
  traffic_[1] += frame.size();
  world_.send_frame(node_, address, std::move(frame), lane);
}

void SimTransport::reply(const std::string& route, Frame frame) {
  if (!stopped_) world_.client_reply(route, std::move(frame));
}

void SimTransport::post(std::function<void()> task) {
  if (!stopped_) world_.post(node_, generation_, std::move(task));
}

void World::post(int node, uint64_t generation, std::function<void()> task) {
  const int slot = store(tasks_, tasks_free_, std::move(task));
  schedule(now_, EventKind::task, node, generation, uint64_t(slot));
}

// Tasks of a process that ended are dropped, as Transport::stop() promises.
void World::run_task(int node, uint64_t generation, int slot) {
  std::function<void()> task = std::move(tasks_[slot]);
  tasks_[slot] = nullptr;
  tasks_free_.push_back(slot);
  const SimNode& n = *nodes_[node];
  if (n.generation == generation && n.process && !n.process->transport.stopped()) task();
}

// --- links ---------------------------------------------------------------------------------------

bool World::blocked(int from, int to) const {
  for (const auto& c : cuts_) {
    if (c.in_a(from) && c.in_b(to)) return true;
    if (!c.one_way && c.in_b(from) && c.in_a(to)) return true;
  }
  return false;
}

// The network's settings for frames from `from` to `to`, with the link faults in force (later
// ones win).
LinkSpec World::link_spec(int from, int to) const {
  LinkSpec spec = scenario_.network;
  for (const LinkFault& f : link_faults_) {
    if (!f.nodes.empty() && std::find(f.nodes.begin(), f.nodes.end(), from) == f.nodes.end() &&
        std::find(f.nodes.begin(), f.nodes.end(), to) == f.nodes.end()) {
      continue;
    }
    f.change(spec);
  }
  return spec;
}

std::optional<Nanos> World::heal_time(int from, int to) const {
  Nanos heal{0};
  for (const auto& c : cuts_) {
    if ((c.in_a(from) && c.in_b(to)) || (!c.one_way && c.in_b(from) && c.in_a(to))) {
      if (!c.heal_at) return std::nullopt;
      heal = std::max(heal, *c.heal_at);
    }
  }
  return heal;
}

// The mesh's lane loses frames to loss and cuts as datagrams would (its protocol repeats
// itself); the sessions' lane is TCP: frames come late, in order, and go only with the
// connection, when a cut never heals.
void World::send_frame(int from, const std::string& address, Frame frame, Transport::Lane lane) {
  summary_.frames++;
  auto it = by_address_.find(address);
  if (it == by_address_.end()) {
    summary_.frames_lost++;
    return;
  }
  const int to = it->second;
  const LinkSpec spec = link_spec(from, to);
  const bool control = lane == Transport::Lane::control;
  auto in_flight = [&](Nanos arrival, Frame bytes) {
    schedule(arrival, EventKind::deliver, store(frames_, frames_free_, FrameInFlight{from, to, lane, std::move(bytes)}));
  };
  if (blocked(from, to)) {
    const auto heal = heal_time(from, to);
    if (control || !heal) {
      summary_.frames_lost++;
      return;
    }
    in_flight(*heal + kRetransmit, std::move(frame));  // TCP retransmits until the link heals
    return;
  }
  if (control && rng_.chance(spec.loss)) {
    summary_.frames_lost++;
    return;
  }
  LinkState& link = links_[link_key(from, to, lane)];
  link.free = std::max(now_, link.free) + Nanos(int64_t(double(frame.size()) / spec.bandwidth * 1e9));
  const Nanos latency = spec.latency;
  const Nanos jitter = Nanos(int64_t((rng_.uniform() * 2 - 1) * double(spec.jitter.count())));
  Nanos arrival = link.free + std::max(Nanos(0), latency + jitter);
  if (!control) {
    for (int tries = 0; tries < 8 && rng_.chance(spec.loss); tries++) arrival += kRetransmit;
    arrival = std::max(arrival, link.last_arrival);
    link.last_arrival = arrival;
    in_flight(arrival, std::move(frame));
    return;
  }
  if (rng_.chance(spec.reorder)) {
    arrival += Nanos(int64_t(rng_.uniform() * double((2 * latency + spec.jitter + 1ms).count())));
  } else {
    arrival = std::max(arrival, link.last_arrival);
    link.last_arrival = arrival;
  }
  if (rng_.chance(spec.duplicate)) {
    in_flight(arrival + Nanos(int64_t(rng_.uniform() * double((latency + spec.jitter).count()))), frame);
  }
  in_flight(arrival, std::move(frame));
}

void World::deliver(int slot) {
  FrameInFlight f = std::move(frames_[slot]);
  frames_free_.push_back(slot);
  const bool control = f.lane == Transport::Lane::control;
  if (!up(f.to)) {
    summary_.frames_lost++;
    return;
  }
  if (blocked(f.from, f.to)) {  // cut while in flight
    if (control) {
      summary_.frames_lost++;
    } else {
      summary_.frames--;  // held until the link heals, and counted once
      send_frame(f.from, nodes_[f.to]->address, std::move(f.bytes), f.lane);
    }
    return;
  }
  trace(control ? "frame" : "data", f.from, f.to, std::to_string(f.bytes.size()));
  SimTransport& t = nodes_[f.to]->process->transport;
  t.count_received(f.bytes.size());
  if (t.events().frame) t.events().frame(Origin::peer(nodes_[f.from]->address), std::move(f.bytes));
}

// The process is gone, and its operating system closes its connections: every node that had
// connected to it hears so from its transport one latency later, as ZeroMQ reports a
// disconnect (node_actor.cpp passes it to Mesh::connection_lost). A cut link carries no word.
void World::connections_lost(const SimNode& n) {
  for (const auto& m : nodes_) {
    if (m->index == n.index || !up(m->index) || blocked(n.index, m->index)) continue;
    if (!links_.count(link_key(m->index, n.index, Transport::Lane::control)) &&
        !links_.count(link_key(m->index, n.index, Transport::Lane::data))) {
      continue;
    }
    schedule(now_ + link_spec(n.index, m->index).latency, EventKind::connection_lost, m->index, m->generation,
             uint64_t(n.index));
  }
}

}  // namespace troupe::sim
