#include "troupe/sim/frame_size.hpp"

#include <msgpack.hpp>

namespace troupe::sim {

namespace {

// A msgpack stream that only counts.
struct ByteCounter {
  uint64_t bytes = 0;
  void write(const char*, std::size_t n) { bytes += n; }
};
using Counter = msgpack::packer<ByteCounter>;

void put(Counter& p, const std::string& s) {
  p.pack_str(static_cast<uint32_t>(s.size()));
  p.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void put(Counter& p, const std::optional<LayerRange>& r) {
  if (!r) {
    p.pack_nil();
    return;
  }
  p.pack_array(2);
  p.pack_int32(r->begin);
  p.pack_int32(r->end);
}

void put(Counter& p, const wire::MemberInfo& m) {
  p.pack_array(11);
  put(p, m.name);
  put(p, m.address);
  p.pack_uint64(m.instance);
  put(p, m.model);
  p.pack_int32(m.model_layers);
  p.pack_uint64(m.mem_budget);
  p.pack_double(m.throughput);
  p.pack_int32(m.cores);
  put(p, m.arch);
  put(p, m.pinned);
  put(p, m.layers);
}

void payload(Counter& p, const wire::Gossip& m) {
  p.pack_array(7);
  p.pack_uint8(static_cast<uint8_t>(m.kind));
  p.pack_uint64(m.probe);
  put(p, m.from);
  put(p, m.target);
  p.pack_uint64(m.term);
  put(p, m.coordinator);
  p.pack_array(static_cast<uint32_t>(m.updates.size()));
  for (const auto& u : m.updates) {
    p.pack_array(3);
    put(p, u.info);
    p.pack_uint8(static_cast<uint8_t>(u.state));
    p.pack_uint64(u.incarnation);
  }
}

void payload(Counter& p, const wire::PlanAnnounce& m) {
  p.pack_array(5);
  p.pack_uint64(m.term);
  put(p, m.coordinator);
  p.pack_uint64(m.version);
  p.pack_array(static_cast<uint32_t>(m.stages.size()));
  for (const auto& st : m.stages) {
    p.pack_array(3);
    put(p, st.node);
    put(p, st.address);
    put(p, std::optional<LayerRange>(st.layers));
  }
  put(p, m.problem);
}

template <typename Body>
uint64_t counted(const Body& body, wire::MessageType type) {
  ByteCounter bytes;
  Counter p(bytes);
  p.pack_array(6);  // the envelope, as wire::encode writes it for Message{0, 0, body}
  p.pack_uint32(wire::kMagic);
  p.pack_uint32(wire::kProtocolVersion);
  p.pack_uint8(static_cast<uint8_t>(type));
  p.pack_uint64(0);
  p.pack_uint64(0);
  payload(p, body);
  return bytes.bytes;
}

}  // namespace

uint64_t frame_bytes(const wire::Body& body) {
  if (const auto* g = std::get_if<wire::Gossip>(&body)) return counted(*g, wire::MessageType::gossip);
  if (const auto* p = std::get_if<wire::PlanAnnounce>(&body)) return counted(*p, wire::MessageType::plan);
  return wire::encode(wire::Message{0, 0, body}).size();
}

}  // namespace troupe::sim
