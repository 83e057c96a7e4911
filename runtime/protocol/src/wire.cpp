// The envelope and the dispatch on message types; each message's payload is encoded and decoded
// from its field list (wire_schema.hpp).
#include "troupe/protocol/wire.hpp"

#include <array>
#include <bit>
#include <cstring>
#include <type_traits>

#include "troupe/kernels/kernels.hpp"
#include "troupe/model/error.hpp"
#include "wire_schema.hpp"

namespace troupe::wire {

static_assert(std::endian::native == std::endian::little,
              "the wire carries little-endian floats and ints as raw bytes");

namespace {

template <std::size_t I>
using Alternative = std::variant_alternative_t<I, Body>;

// Per message type: its name and how its payload is read; unknown types have neither.
struct TypeEntry {
  const char* name = nullptr;
  Body (*decode)(const msgpack::object& payload) = nullptr;
};

template <class M>
Body decode_payload(const msgpack::object& payload) {
  schema::Reader fields(payload, schema::spec_of<M>.name);
  M m;
  schema::read_record(fields, m);
  return m;
}

constexpr std::array<TypeEntry, 256> kTypes = [] {
  std::array<TypeEntry, 256> table{};
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((table[static_cast<uint8_t>(schema::spec_of<Alternative<I>>.type)] =
          TypeEntry{schema::spec_of<Alternative<I>>.name, &decode_payload<Alternative<I>>}),
     ...);
  }(std::make_index_sequence<std::variant_size_v<Body>>{});
  return table;
}();

constexpr std::array<MessageType, std::variant_size_v<Body>> kTypeOfAlternative = [] {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return std::array<MessageType, sizeof...(I)>{schema::spec_of<Alternative<I>>.type...};
  }(std::make_index_sequence<std::variant_size_v<Body>>{});
}();

static_assert(
    [] {
      for (std::size_t i = 0; i < kTypeOfAlternative.size(); i++) {
        for (std::size_t j = 0; j < i; j++) {
          if (kTypeOfAlternative[i] == kTypeOfAlternative[j]) return false;
        }
      }
      return true;
    }(),
    "two messages of Body declare the same MessageType");

template <std::size_t N>
const char* name_in(const char* const (&names)[N], std::size_t i) {
  return i < N ? names[i] : "unknown";
}

}  // namespace

const char* type_name(MessageType type) {
  const char* name = kTypes[static_cast<uint8_t>(type)].name;
  return name ? name : "unknown";
}

const char* state_name(MemberState s) { return name_in(schema::kMemberStates, std::size_t(s)); }

const char* encoding_name(ActivationEncoding e) { return name_in(schema::kEncodings, std::size_t(e)); }

MessageType Message::type() const { return kTypeOfAlternative[body.index()]; }

// --- activations -------------------------------------------------------------------------------

Activations Activations::pack(const float* x, int count, int dim, ActivationEncoding encoding) {
  Activations a;
  a.count = count;
  a.encoding = encoding;
  const std::size_t n = std::size_t(count) * dim;
  if (encoding == ActivationEncoding::f32) {
    a.data.resize(n * 4);
    std::memcpy(a.data.data(), x, n * 4);
  } else {
    a.data.resize(n * 2);
    for (std::size_t i = 0; i < n; i++) {
      const uint16_t h = kernels::fp32_to_fp16(x[i]);
      std::memcpy(a.data.data() + 2 * i, &h, 2);
    }
  }
  return a;
}

std::size_t encoded_bytes(ActivationEncoding e) { return e == ActivationEncoding::f32 ? 4 : 2; }

void Activations::unpack(float* x, int dim) const {
  const std::size_t n = std::size_t(count) * dim;
  const std::size_t width = encoded_bytes(encoding);
  if (data.size() != n * width) {
    throw InputError("activations: " + std::to_string(data.size()) + " bytes for " +
                     std::to_string(count) + " rows of " + std::to_string(dim) + " " +
                     encoding_name(encoding) + " values");
  }
  if (encoding == ActivationEncoding::f32) {
    std::memcpy(x, data.data(), n * 4);
  } else {
    for (std::size_t i = 0; i < n; i++) {
      uint16_t h;
      std::memcpy(&h, data.data() + 2 * i, 2);
      x[i] = kernels::fp16_to_fp32(h);
    }
  }
}

// --- frames ------------------------------------------------------------------------------------

namespace schema {

void over_limit(Where at, std::size_t size, std::size_t limit, const char* unit) {
  throw InputError(std::string(at.record) + "." + at.field + " of " + std::to_string(size) + " " + unit +
                   " is over the limit of " + std::to_string(limit));
}

}  // namespace schema

std::vector<uint8_t> encode(const Message& message) {
  msgpack::sbuffer buffer;
  schema::Packer p(buffer);
  // The envelope: [magic, version, type, session, seq, payload].
  p.pack_array(6);
  p.pack_uint32(kMagic);
  p.pack_uint32(kProtocolVersion);
  p.pack_uint8(static_cast<uint8_t>(message.type()));
  p.pack_uint64(message.session);
  p.pack_uint64(message.seq);
  std::visit([&](const auto& body) { schema::write_record(p, body); }, message.body);
  if (buffer.size() > kMaxFrameBytes) {
    throw InputError("frame of " + std::to_string(buffer.size()) + " bytes is over the limit of " +
                     std::to_string(kMaxFrameBytes));
  }
  const auto* data = reinterpret_cast<const uint8_t*>(buffer.data());
  return std::vector<uint8_t>(data, data + buffer.size());
}

namespace {

// The parser's objects live in one zone per thread, emptied when a frame is decoded (its first
// chunk stays), so that decoding a small frame allocates nothing but what the message keeps.
class ParserZone {
 public:
  ParserZone() : zone_(of_this_thread()) {}
  ~ParserZone() { zone_.clear(); }
  ParserZone(const ParserZone&) = delete;
  ParserZone& operator=(const ParserZone&) = delete;
  msgpack::zone& get() { return zone_; }

 private:
  static msgpack::zone& of_this_thread() {
    thread_local msgpack::zone zone;
    return zone;
  }
  msgpack::zone& zone_;
};

msgpack::object parse(std::span<const uint8_t> frame, msgpack::zone& zone) {
  if (frame.size() > kMaxFrameBytes) {
    throw InputError("frame of " + std::to_string(frame.size()) + " bytes is over the limit of " +
                     std::to_string(kMaxFrameBytes));
  }
  // Small containers only (the big payloads are bins), shallow nesting: a hostile header cannot
  // make the parser reserve room for more items than the longest array a frame may hold
  // (kMaxArrayItems: a generate's chat messages); each field's own limit is checked as it is read.
  const msgpack::unpack_limit limit(/*array=*/kMaxArrayItems, /*map=*/0,
                                    /*str=*/kMaxTextBytes, /*bin=*/kMaxFrameBytes, /*ext=*/0,
                                    /*depth=*/6);
  std::size_t offset = 0;
  // Strings and bins point into `frame` instead of being copied into the parser's zone: the
  // fields copy what they keep before decode returns, so an activation frame is copied once.
  auto in_place = [](msgpack::type::object_type, std::size_t, void*) { return true; };
  msgpack::object root;
  try {
    root = msgpack::unpack(zone, reinterpret_cast<const char*>(frame.data()), frame.size(), offset,
                           +in_place, nullptr, limit);
  } catch (const std::exception& e) {
    throw InputError(std::string("malformed frame (") + e.what() + ")");
  }
  if (offset != frame.size()) throw InputError("malformed frame (bytes after the end)");
  return root;
}

}  // namespace

Message decode(std::span<const uint8_t> frame) {
  ParserZone zone;
  schema::Reader envelope(parse(frame, zone.get()), "envelope");
  if (envelope.size() < 6) envelope.fail("too short");
  const uint64_t magic = envelope.u64();
  if (magic != kMagic) throw InputError("not a troupe frame (bad magic)");
  const uint64_t version = envelope.u64();
  if (version != kProtocolVersion) {
    throw InputError("protocol version " + std::to_string(version) + ", this node speaks " +
                     std::to_string(kProtocolVersion));
  }
  const uint64_t type = envelope.u64();
  if (type >= kTypes.size() || !kTypes[type].decode) {
    throw InputError("unknown message type " + std::to_string(type));
  }
  Message m;
  m.session = envelope.u64();
  m.seq = envelope.u64();
  m.body = kTypes[type].decode(envelope.next());
  return m;
}

}  // namespace troupe::wire
