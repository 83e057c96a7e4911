#include "support/raw_peer.hpp"

#include <catch2/catch.hpp>

#include "support/nodes.hpp"
#include "troupe/net/zmq_transport.hpp"

namespace troupe::test {

namespace {

// One context for every raw socket of the test process.
zmq::context_t& context() {
  static zmq::context_t c;
  return c;
}

}  // namespace

RawPeer::RawPeer(const std::string& address, const std::string& as_member)
    : socket_(context(), zmq::socket_type::dealer) {
  if (!as_member.empty()) socket_.set(zmq::sockopt::routing_id, net::peer_routing_id(as_member, Transport::Lane::control));
  // Frames still queued when the peer is destroyed go out all the same (an attack sent and
  // forgotten), for a second at most: a node that is gone does not hold up the test's exit.
  socket_.set(zmq::sockopt::linger, 1000);
  socket_.connect("tcp://" + address);
}

void RawPeer::send(const wire::Message& message) { send_bytes(wire::encode(message)); }

void RawPeer::send_bytes(const std::vector<uint8_t>& bytes) { socket_.send(zmq::buffer(bytes)); }

std::optional<wire::Message> RawPeer::receive(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) == 0) return std::nullopt;
  zmq::message_t m;
  (void)socket_.recv(m);
  return wire::decode({static_cast<const uint8_t*>(m.data()), m.size()});
}

wire::Message gossip_frame(const std::string& from, std::vector<wire::MemberUpdate> updates, wire::Gossip::Kind kind) {
  wire::Gossip g;
  g.kind = kind;
  g.from = from;
  g.updates = std::move(updates);
  return wire::Message{0, 1, std::move(g)};
}

std::vector<wire::MemberUpdate> member_table(const std::string& seed, std::chrono::milliseconds timeout) {
  zmq::socket_t inbox(context(), zmq::socket_type::router);
  inbox.set(zmq::sockopt::linger, 0);
  const std::string me = "127.0.0.1:" + std::to_string(free_port());
  inbox.bind("tcp://" + me);
  RawPeer asker(seed, me);
  asker.send(gossip_frame(me, {}, wire::Gossip::Kind::sync));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    zmq::pollitem_t item{inbox.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(50)) == 0) continue;
    std::vector<zmq::message_t> parts;  // [the sender's routing id, the frame]
    do {
      parts.emplace_back();
      (void)inbox.recv(parts.back());
    } while (parts.back().more());
    const wire::Message m = wire::decode({static_cast<const uint8_t*>(parts.back().data()), parts.back().size()});
    const auto* g = std::get_if<wire::Gossip>(&m.body);
    if (g && g->kind == wire::Gossip::Kind::sync_reply) return g->updates;
  }
  FAIL("no member table came from " << seed << " within " << timeout.count() << " ms");
  return {};
}


namespace {

// The frame of a multi-part message off a ROUTER (after the sender's routing id); none when what
// came is not a frame of the protocol.
std::optional<wire::Message> receive_routed(zmq::socket_t& router, std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) == 0) return std::nullopt;
  std::vector<zmq::message_t> parts;
  do {
    parts.emplace_back();
    (void)router.recv(parts.back());
  } while (parts.back().more());
  try {
    return wire::decode({static_cast<const uint8_t*>(parts.back().data()), parts.back().size()});
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

ImpostorMember::ImpostorMember(const std::string& seed, int token, double throughput)
    : inbox_(context(), zmq::socket_type::router),
      address_("127.0.0.1:" + std::to_string(free_port())),
      token_(token) {
  inbox_.set(zmq::sockopt::linger, 0);
  inbox_.bind("tcp://" + address_);
  const wire::MemberInfo like = member_table(seed).front().info;
  info_.name = "impostor";
  info_.address = address_;
  info_.instance = uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
  info_.model = like.model;
  info_.model_layers = like.model_layers;
  info_.mem_budget = uint64_t(1) << 40;
  info_.throughput = throughput;
  info_.cores = 64;
  info_.arch = "x86_64";
  send(seed, gossip_frame(address_, {self_update()}, wire::Gossip::Kind::sync));
  thread_ = std::thread([this] { run(); });
}

ImpostorMember::~ImpostorMember() {
  stop_ = true;
  thread_.join();
}

std::optional<LayerRange> ImpostorMember::layers() const {
  const std::lock_guard lock(mutex_);
  return info_.layers;
}

wire::MemberUpdate ImpostorMember::self_update() const {
  const std::lock_guard lock(mutex_);
  return {info_, wire::MemberState::alive, incarnation_, {}};
}

void ImpostorMember::send(const std::string& to, const wire::Message& m) {
  auto& peer = peers_[to];
  if (!peer) peer = std::make_unique<RawPeer>(to, address_);
  peer->send(m);
}

// Every second it tells every member it knows that it is alive (with its layers), as members do.
void ImpostorMember::run() {
  auto next_push = std::chrono::steady_clock::now();
  while (!stop_) {
    if (const auto m = receive_routed(inbox_, std::chrono::milliseconds(20))) on_frame(*m);
    if (std::chrono::steady_clock::now() < next_push) continue;
    next_push += std::chrono::seconds(1);
    const wire::Message push = gossip_frame(address_, {self_update()});
    for (auto& [address, peer] : peers_) peer->send(push);
  }
}

void ImpostorMember::on_frame(const wire::Message& m) {
  if (const auto* g = std::get_if<wire::Gossip>(&m.body)) {
    for (const auto& u : g->updates) {
      if (u.info.address != address_ && !peers_.count(u.info.address)) peers_[u.info.address] = std::make_unique<RawPeer>(u.info.address, address_);
    }
    if (g->kind == wire::Gossip::Kind::ping) {
      wire::Message ack = gossip_frame(address_, {self_update()}, wire::Gossip::Kind::ack);
      std::get<wire::Gossip>(ack.body).probe = g->probe;
      std::get<wire::Gossip>(ack.body).target = address_;
      send(g->from, ack);
    } else if (g->kind == wire::Gossip::Kind::sync) {
      send(g->from, gossip_frame(address_, {self_update()}));
    }
  } else if (const auto* p = std::get_if<wire::PlanAnnounce>(&m.body)) {
    std::optional<LayerRange> given;
    for (const auto& st : p->stages) {
      if (st.address == address_) given = st.layers;
    }
    const std::lock_guard lock(mutex_);
    if (given != info_.layers) {
      info_.layers = given;
      incarnation_++;
    }
  } else if (const auto* s = std::get_if<wire::SessionStart>(&m.body)) {
    sessions_++;
    entries_[m.session] = s->entry;
    send(s->entry, wire::Message{m.session, 1, wire::Sampled{int(s->tokens.size()), token_}});
  } else if (const auto* step = std::get_if<wire::Step>(&m.body)) {
    const auto entry = entries_.find(m.session);
    if (entry != entries_.end()) send(entry->second, wire::Message{m.session, 2, wire::Sampled{step->pos + 1, token_}});
  }
}

}  // namespace troupe::test
