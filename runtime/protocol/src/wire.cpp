#include "troupe/protocol/wire.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <msgpack.hpp>
#include <type_traits>

#include "troupe/kernels/kernels.hpp"
#include "troupe/model/error.hpp"

namespace troupe::wire {

static_assert(std::endian::native == std::endian::little,
              "the wire carries little-endian floats and ints as raw bytes");

const char* type_name(MessageType type) {
  switch (type) {
    case MessageType::session_start: return "session_start";
    case MessageType::step: return "step";
    case MessageType::activations: return "activations";
    case MessageType::sampled: return "sampled";
    case MessageType::session_end: return "session_end";
    case MessageType::error: return "error";
    case MessageType::gossip: return "gossip";
    case MessageType::plan: return "plan";
    case MessageType::generate: return "generate";
    case MessageType::text: return "text";
    case MessageType::done: return "done";
    case MessageType::status_request: return "status_request";
    case MessageType::status: return "status";
  }
  return "unknown";
}

const char* state_name(MemberState s) {
  switch (s) {
    case MemberState::alive: return "alive";
    case MemberState::suspect: return "suspect";
    case MemberState::dead: return "dead";
    case MemberState::left: return "left";
  }
  return "unknown";
}

const char* encoding_name(ActivationEncoding e) {
  return e == ActivationEncoding::f16 ? "f16" : "f32";
}

namespace {

MessageType type_of(const Body& body) {
  static constexpr MessageType kTypes[] = {
      MessageType::session_start, MessageType::step,     MessageType::activations,
      MessageType::sampled,       MessageType::session_end, MessageType::error,
      MessageType::gossip,        MessageType::plan,     MessageType::generate,
      MessageType::text,          MessageType::done,     MessageType::status_request,
      MessageType::status};
  static_assert(std::size(kTypes) == std::variant_size_v<Body>);
  return kTypes[body.index()];
}

}  // namespace

MessageType Message::type() const { return type_of(body); }

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

void Activations::unpack(float* x, int dim) const {
  const std::size_t n = std::size_t(count) * dim;
  const std::size_t width = encoding == ActivationEncoding::f32 ? 4 : 2;
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

// --- encoding ----------------------------------------------------------------------------------

namespace {

void check_size(std::size_t size, std::size_t limit, const char* what) {
  if (size > limit) {
    throw InputError(std::string(what) + " of " + std::to_string(size) + " bytes is over the limit of " +
                     std::to_string(limit));
  }
}

void put(auto& p, const std::string& s, std::size_t limit, const char* what) {
  check_size(s.size(), limit, what);
  p.pack_str(static_cast<uint32_t>(s.size()));
  p.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void put(auto& p, const std::optional<LayerRange>& r) {
  if (!r) {
    p.pack_nil();
    return;
  }
  p.pack_array(2);
  p.pack_int32(r->begin);
  p.pack_int32(r->end);
}

void put(auto& p, const MemberInfo& m) {
  p.pack_array(11);
  put(p, m.name, kMaxNameBytes, "member name");
  put(p, m.address, kMaxNameBytes, "member address");
  p.pack_uint64(m.instance);
  put(p, m.model, kMaxNameBytes, "model identity");
  p.pack_int32(m.model_layers);
  p.pack_uint64(m.mem_budget);
  p.pack_double(m.throughput);
  p.pack_int32(m.cores);
  put(p, m.arch, kMaxNameBytes, "architecture");
  put(p, m.pinned);
  put(p, m.layers);
}

void put(auto& p, const PlanStage& s) {
  p.pack_array(3);
  put(p, s.node, kMaxNameBytes, "stage node");
  put(p, s.address, kMaxNameBytes, "stage address");
  put(p, std::optional<LayerRange>(s.layers));
}

void put(auto& p, const SamplingSettings& s) {
  p.pack_array(3);
  p.pack_float(s.temperature);
  p.pack_float(s.topp);
  p.pack_uint64(s.seed);
}

void put_bin(auto& p, const void* data, std::size_t bytes) {
  p.pack_bin(static_cast<uint32_t>(bytes));
  p.pack_bin_body(static_cast<const char*>(data), static_cast<uint32_t>(bytes));
}

void payload(auto& p, const Gossip& m) {
  if (m.updates.size() > kMaxPeers) throw InputError("gossip: too many member updates");
  p.pack_array(7);
  p.pack_uint8(static_cast<uint8_t>(m.kind));
  p.pack_uint64(m.probe);
  put(p, m.from, kMaxNameBytes, "sender address");
  put(p, m.target, kMaxNameBytes, "target address");
  p.pack_uint64(m.term);
  put(p, m.coordinator, kMaxNameBytes, "coordinator");
  p.pack_array(static_cast<uint32_t>(m.updates.size()));
  for (const auto& u : m.updates) {
    p.pack_array(3);
    put(p, u.info);
    p.pack_uint8(static_cast<uint8_t>(u.state));
    p.pack_uint64(u.incarnation);
  }
}

void payload(auto& p, const PlanAnnounce& m) {
  if (m.stages.size() > kMaxRouteStages) throw InputError("plan: too many stages");
  p.pack_array(5);
  p.pack_uint64(m.term);
  put(p, m.coordinator, kMaxNameBytes, "coordinator");
  p.pack_uint64(m.version);
  p.pack_array(static_cast<uint32_t>(m.stages.size()));
  for (const auto& st : m.stages) put(p, st);
  put(p, m.problem, kMaxTextBytes, "problem");
}

void payload(auto& p, const SessionStart& m) {
  if (m.route.size() > kMaxRouteStages) throw InputError("session_start: route too long");
  if (m.tokens.size() > std::size_t(kMaxPositions)) throw InputError("session_start: too many tokens");
  p.pack_array(5);
  put(p, m.entry, kMaxNameBytes, "entry address");
  p.pack_array(static_cast<uint32_t>(m.route.size()));
  for (const auto& s : m.route) {
    p.pack_array(2);
    put(p, s.address, kMaxNameBytes, "stage address");
    put(p, std::optional<LayerRange>(s.layers));
  }
  put(p, m.sampling);
  p.pack_int32(m.steps);
  std::vector<int32_t> tokens(m.tokens.begin(), m.tokens.end());
  put_bin(p, tokens.data(), tokens.size() * 4);
}

void payload(auto& p, const Step& m) {
  p.pack_array(2);
  p.pack_int32(m.pos);
  p.pack_int32(m.token);
}

void payload(auto& p, const Activations& m) {
  p.pack_array(6);
  p.pack_int32(m.pos);
  p.pack_int32(m.count);
  p.pack(m.sample);
  p.pack_uint8(static_cast<uint8_t>(m.encoding));
  check_size(m.data.size(), kMaxFrameBytes, "activations");
  put_bin(p, m.data.data(), m.data.size());
  p.pack_uint64(m.compute_us);
}

void payload(auto& p, const Sampled& m) {
  p.pack_array(4);
  p.pack_int32(m.pos);
  p.pack_int32(m.token);
  p.pack_uint64(m.rng_state);
  p.pack_uint64(m.compute_us);
}

void payload(auto& p, const SessionEnd& m) {
  p.pack_array(1);
  put(p, m.reason, kMaxTextBytes, "reason");
}

void payload(auto& p, const Error& m) {
  p.pack_array(2);
  p.pack_int32(m.code);
  put(p, m.message, kMaxTextBytes, "error message");
}

void payload(auto& p, const GenerateRequest& m) {
  if (m.stop.size() > kMaxStopStrings) throw InputError("generate: too many stop strings");
  if (m.messages.size() > kMaxChatMessages) throw InputError("generate: too many chat messages");
  p.pack_array(9);
  put(p, m.prompt, kMaxTextBytes, "prompt");
  put(p, m.sampling);
  p.pack_int32(m.steps);
  p.pack(m.chat);
  p.pack_int32(m.max_tokens);
  p.pack(m.echo);
  p.pack_array(static_cast<uint32_t>(m.stop.size()));
  for (const auto& s : m.stop) put(p, s, kMaxNameBytes, "stop string");
  p.pack_array(static_cast<uint32_t>(m.messages.size()));
  for (const auto& x : m.messages) {
    p.pack_array(2);
    put(p, x.role, kMaxNameBytes, "chat role");
    put(p, x.content, kMaxTextBytes, "chat message");
  }
  put(p, m.chat_template, kMaxNameBytes, "chat template");
}

void payload(auto& p, const Text& m) {
  p.pack_array(1);
  put(p, m.text, kMaxTextBytes, "text");
}

void payload(auto& p, const Done& m) {
  const GenerationStats& s = m.stats;
  p.pack_array(7);
  p.pack_int32(s.prompt_tokens);
  p.pack_int32(s.generated_tokens);
  p.pack_int32(s.positions);
  p.pack_double(s.first_token_ms);
  p.pack_double(s.decode_ms);
  p.pack_double(s.total_ms);
  put(p, m.finish_reason, kMaxNameBytes, "finish reason");
}

void payload(auto& p, const StatusRequest&) { p.pack_array(0); }

void payload(auto& p, const Status& m) {
  if (m.members.size() > kMaxPeers || m.stages.size() > kMaxRouteStages) {
    throw InputError("status: too many members or stages");
  }
  p.pack_array(10);
  put(p, m.self, kMaxNameBytes, "name");
  p.pack_uint64(m.term);
  if (m.coordinator) {
    put(p, *m.coordinator, kMaxNameBytes, "coordinator");
  } else {
    p.pack_nil();
  }
  p.pack_array(static_cast<uint32_t>(m.members.size()));
  for (const auto& x : m.members) {
    p.pack_array(8);
    put(p, x.name, kMaxNameBytes, "member name");
    put(p, x.address, kMaxNameBytes, "member address");
    put(p, x.state, kMaxNameBytes, "member state");
    put(p, x.layers);
    p.pack_uint64(x.mem_budget);
    p.pack_double(x.throughput);
    p.pack_int32(x.cores);
    put(p, x.arch, kMaxNameBytes, "architecture");
  }
  p.pack_uint64(m.plan_version);
  p.pack_array(static_cast<uint32_t>(m.stages.size()));
  for (const auto& s : m.stages) put(p, s);
  p.pack_int32(m.model_layers);
  p.pack(m.serving);
  put(p, m.problem, kMaxTextBytes, "problem");
  const NodeCounters& c = m.counters;
  p.pack_array(11);
  for (uint64_t v : {c.sessions_active, c.sessions_total, c.tokens_generated, c.stage_positions}) p.pack_uint64(v);
  p.pack_double(c.stage_compute_seconds);
  for (uint64_t v : {c.frames_sent, c.bytes_sent, c.frames_received, c.bytes_received, c.hops}) p.pack_uint64(v);
  p.pack_double(c.hop_seconds);
}

// --- decoding ----------------------------------------------------------------------------------

// The fields of one msgpack array, read in order with their types and ranges checked.
class Fields {
 public:
  Fields(const msgpack::object& o, const char* what) : what_(what) {
    if (o.type != msgpack::type::ARRAY) fail("expected an array");
    a_ = o.via.array;
  }

  [[noreturn]] void fail(const std::string& why) const {
    throw InputError(std::string(what_) + ": " + why);
  }
  const msgpack::object& next() {
    if (i_ >= a_.size) fail("missing field " + std::to_string(i_ + 1));
    return a_.ptr[i_++];
  }
  bool next_is_nil() const { return i_ < a_.size && a_.ptr[i_].type == msgpack::type::NIL; }
  // Whether another field follows (fields appended later are absent in older frames).
  bool more() const { return i_ < a_.size; }
  std::size_t size() const { return a_.size; }

  uint64_t u64() {
    const auto& o = next();
    if (o.type != msgpack::type::POSITIVE_INTEGER) fail("expected an unsigned integer");
    return o.via.u64;
  }
  int64_t i64() {
    const auto& o = next();
    if (o.type == msgpack::type::POSITIVE_INTEGER) {
      if (o.via.u64 > uint64_t(INT64_MAX)) fail("integer out of range");
      return static_cast<int64_t>(o.via.u64);
    }
    if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
    fail("expected an integer");
  }
  int integer(int64_t lo, int64_t hi, const char* name) {
    const int64_t v = i64();
    if (v < lo || v > hi) {
      fail(std::string(name) + " " + std::to_string(v) + " is outside " + std::to_string(lo) +
           ".." + std::to_string(hi));
    }
    return static_cast<int>(v);
  }
  bool boolean() {
    const auto& o = next();
    if (o.type != msgpack::type::BOOLEAN) fail("expected a boolean");
    return o.via.boolean;
  }
  double real() {
    const auto& o = next();
    if (o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64) return o.via.f64;
    if (o.type == msgpack::type::POSITIVE_INTEGER) return static_cast<double>(o.via.u64);
    if (o.type == msgpack::type::NEGATIVE_INTEGER) return static_cast<double>(o.via.i64);
    fail("expected a number");
  }
  std::string str(std::size_t limit, const char* name) {
    const auto& o = next();
    if (o.type != msgpack::type::STR) fail(std::string(name) + ": expected a string");
    if (o.via.str.size > limit) fail(std::string(name) + " is over " + std::to_string(limit) + " bytes");
    return std::string(o.via.str.ptr, o.via.str.size);
  }
  std::span<const uint8_t> bin(const char* name) {
    const auto& o = next();
    if (o.type != msgpack::type::BIN) fail(std::string(name) + ": expected binary data");
    return {reinterpret_cast<const uint8_t*>(o.via.bin.ptr), o.via.bin.size};
  }
  Fields array(const char* name) { return Fields(next(), name); }
  std::optional<LayerRange> layers() {
    if (next_is_nil()) {
      next();
      return std::nullopt;
    }
    Fields r = array("layers");
    LayerRange range;
    range.begin = r.integer(0, kMaxPositions, "first layer");
    range.end = r.integer(0, kMaxPositions, "end layer");
    if (range.end <= range.begin) fail("empty layer range");
    return range;
  }

 private:
  const char* what_;
  msgpack::object_array a_{};
  uint32_t i_ = 0;
};

MemberInfo read_member_info(Fields f) {
  MemberInfo m;
  m.name = f.str(kMaxNameBytes, "name");
  m.address = f.str(kMaxNameBytes, "address");
  m.instance = f.u64();
  m.model = f.str(kMaxNameBytes, "model");
  m.model_layers = f.integer(0, kMaxPositions, "model layers");
  m.mem_budget = f.u64();
  m.throughput = f.real();
  if (!std::isfinite(m.throughput) || m.throughput < 0) f.fail("bad throughput");
  m.cores = f.integer(0, 1 << 20, "cores");
  m.arch = f.str(kMaxNameBytes, "architecture");
  m.pinned = f.layers();
  m.layers = f.layers();
  return m;
}

PlanStage read_plan_stage(Fields f) {
  PlanStage stage;
  stage.node = f.str(kMaxNameBytes, "node");
  stage.address = f.str(kMaxNameBytes, "address");
  const auto layers = f.layers();
  if (!layers) f.fail("stage without layers");
  stage.layers = *layers;
  return stage;
}

SamplingSettings read_sampling(Fields f) {
  SamplingSettings s;
  s.temperature = static_cast<float>(f.real());
  s.topp = static_cast<float>(f.real());
  s.seed = f.u64();
  if (!std::isfinite(s.temperature) || s.temperature < 0) f.fail("bad temperature");
  if (!std::isfinite(s.topp) || s.topp < 0 || s.topp > 1) f.fail("bad top-p");
  return s;
}

Body read_body(MessageType type, const msgpack::object& o) {
  Fields f(o, type_name(type));
  switch (type) {
    case MessageType::gossip: {
      Gossip m;
      m.kind = static_cast<Gossip::Kind>(f.integer(0, 4, "gossip kind"));
      m.probe = f.u64();
      m.from = f.str(kMaxNameBytes, "from");
      m.target = f.str(kMaxNameBytes, "target");
      m.term = f.u64();
      m.coordinator = f.str(kMaxNameBytes, "coordinator");
      Fields updates = f.array("updates");
      if (updates.size() > kMaxPeers) f.fail("too many member updates");
      for (std::size_t i = 0; i < updates.size(); i++) {
        Fields u = updates.array("member update");
        MemberUpdate update;
        update.info = read_member_info(u.array("member"));
        update.state = static_cast<MemberState>(u.integer(0, 3, "member state"));
        update.incarnation = u.u64();
        m.updates.push_back(std::move(update));
      }
      return m;
    }
    case MessageType::plan: {
      PlanAnnounce m;
      m.term = f.u64();
      m.coordinator = f.str(kMaxNameBytes, "coordinator");
      m.version = f.u64();
      Fields stages = f.array("stages");
      if (stages.size() > kMaxRouteStages) f.fail("too many stages");
      for (std::size_t i = 0; i < stages.size(); i++) m.stages.push_back(read_plan_stage(stages.array("stage")));
      m.problem = f.str(kMaxTextBytes, "problem");
      return m;
    }
    case MessageType::session_start: {
      SessionStart m;
      m.entry = f.str(kMaxNameBytes, "entry");
      Fields route = f.array("route");
      if (route.size() > kMaxRouteStages) f.fail("route too long");
      for (std::size_t i = 0; i < route.size(); i++) {
        Fields s = route.array("stage");
        RouteStage stage;
        stage.address = s.str(kMaxNameBytes, "address");
        const auto layers = s.layers();
        if (!layers) s.fail("stage without layers");
        stage.layers = *layers;
        m.route.push_back(stage);
      }
      m.sampling = read_sampling(f.array("sampling"));
      m.steps = f.integer(1, kMaxPositions, "steps");
      const auto tokens = f.bin("tokens");
      if (tokens.size() % 4 != 0 || tokens.size() / 4 > std::size_t(kMaxPositions)) {
        f.fail("tokens: not a whole number of int32");
      }
      m.tokens.resize(tokens.size() / 4);
      std::memcpy(m.tokens.data(), tokens.data(), tokens.size());
      return m;
    }
    case MessageType::step: {
      Step m;
      m.pos = f.integer(0, kMaxPositions, "position");
      m.token = f.integer(0, INT32_MAX, "token");
      return m;
    }
    case MessageType::activations: {
      Activations m;
      m.pos = f.integer(0, kMaxPositions, "position");
      m.count = f.integer(1, kMaxActivationRows, "count");
      m.sample = f.boolean();
      const int encoding = f.integer(0, 1, "encoding");
      m.encoding = static_cast<ActivationEncoding>(encoding);
      const auto data = f.bin("data");
      m.data.assign(data.begin(), data.end());
      m.compute_us = f.u64();
      return m;
    }
    case MessageType::sampled: {
      Sampled m;
      m.pos = f.integer(0, kMaxPositions, "position");
      m.token = f.integer(0, INT32_MAX, "token");
      m.rng_state = f.u64();
      m.compute_us = f.u64();
      return m;
    }
    case MessageType::session_end: {
      SessionEnd m;
      m.reason = f.str(kMaxTextBytes, "reason");
      return m;
    }
    case MessageType::error: {
      Error m;
      m.code = f.integer(0, 255, "code");
      m.message = f.str(kMaxTextBytes, "message");
      return m;
    }
    case MessageType::generate: {
      GenerateRequest m;
      m.prompt = f.str(kMaxTextBytes, "prompt");
      m.sampling = read_sampling(f.array("sampling"));
      m.steps = f.integer(0, kMaxPositions, "steps");
      m.chat = f.boolean();
      if (!f.more()) return m;
      m.max_tokens = f.integer(0, kMaxPositions, "max_tokens");
      m.echo = f.boolean();
      Fields stop = f.array("stop");
      if (stop.size() > kMaxStopStrings) f.fail("too many stop strings");
      for (std::size_t i = 0; i < stop.size(); i++) m.stop.push_back(stop.str(kMaxNameBytes, "stop string"));
      Fields messages = f.array("messages");
      if (messages.size() > kMaxChatMessages) f.fail("too many chat messages");
      for (std::size_t i = 0; i < messages.size(); i++) {
        Fields x = messages.array("message");
        ChatMessage message;
        message.role = x.str(kMaxNameBytes, "role");
        message.content = x.str(kMaxTextBytes, "content");
        m.messages.push_back(std::move(message));
      }
      m.chat_template = f.str(kMaxNameBytes, "chat template");
      return m;
    }
    case MessageType::text: {
      Text m;
      m.text = f.str(kMaxTextBytes, "text");
      return m;
    }
    case MessageType::done: {
      Done m;
      m.stats.prompt_tokens = f.integer(0, kMaxPositions, "prompt tokens");
      m.stats.generated_tokens = f.integer(0, kMaxPositions, "generated tokens");
      m.stats.positions = f.integer(0, kMaxPositions, "positions");
      m.stats.first_token_ms = f.real();
      m.stats.decode_ms = f.real();
      m.stats.total_ms = f.real();
      if (f.more()) m.finish_reason = f.str(kMaxNameBytes, "finish reason");
      return m;
    }
    case MessageType::status_request:
      return StatusRequest{};
    case MessageType::status: {
      Status m;
      m.self = f.str(kMaxNameBytes, "name");
      m.term = f.u64();
      if (f.next_is_nil()) {
        f.next();
      } else {
        m.coordinator = f.str(kMaxNameBytes, "coordinator");
      }
      Fields members = f.array("members");
      if (members.size() > kMaxPeers) f.fail("too many members");
      for (std::size_t i = 0; i < members.size(); i++) {
        Fields x = members.array("member");
        Member member;
        member.name = x.str(kMaxNameBytes, "name");
        member.address = x.str(kMaxNameBytes, "address");
        member.state = x.str(kMaxNameBytes, "state");
        member.layers = x.layers();
        member.mem_budget = x.u64();
        member.throughput = x.real();
        member.cores = x.integer(0, 1 << 20, "cores");
        member.arch = x.str(kMaxNameBytes, "architecture");
        m.members.push_back(std::move(member));
      }
      m.plan_version = f.u64();
      Fields stages = f.array("stages");
      if (stages.size() > kMaxRouteStages) f.fail("too many stages");
      for (std::size_t i = 0; i < stages.size(); i++) m.stages.push_back(read_plan_stage(stages.array("stage")));
      m.model_layers = f.integer(0, kMaxPositions, "model layers");
      m.serving = f.boolean();
      m.problem = f.str(kMaxTextBytes, "problem");
      Fields c = f.array("counters");
      NodeCounters& n = m.counters;
      for (uint64_t* v : {&n.sessions_active, &n.sessions_total, &n.tokens_generated, &n.stage_positions}) *v = c.u64();
      n.stage_compute_seconds = c.real();
      for (uint64_t* v : {&n.frames_sent, &n.bytes_sent, &n.frames_received, &n.bytes_received, &n.hops}) *v = c.u64();
      n.hop_seconds = c.real();
      return m;
    }
  }
  throw InputError("unknown message type " + std::to_string(int(type)));
}

bool known_type(uint64_t t) {
  return (t >= 2 && t <= 9) || (t >= 16 && t <= 20);
}

}  // namespace

namespace {

void pack_frame(auto& p, const Body& body, uint64_t session, uint64_t seq) {
  p.pack_array(6);
  p.pack_uint32(kMagic);
  p.pack_uint32(kProtocolVersion);
  p.pack_uint8(static_cast<uint8_t>(type_of(body)));
  p.pack_uint64(session);
  p.pack_uint64(seq);
  std::visit([&](const auto& b) { payload(p, b); }, body);
}

}  // namespace

std::vector<uint8_t> encode(const Message& message) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> p(buffer);
  pack_frame(p, message.body, message.session, message.seq);
  check_size(buffer.size(), kMaxFrameBytes, "frame");
  const auto* data = reinterpret_cast<const uint8_t*>(buffer.data());
  return std::vector<uint8_t>(data, data + buffer.size());
}

Message decode(std::span<const uint8_t> frame) {
  if (frame.size() > kMaxFrameBytes) {
    throw InputError("frame of " + std::to_string(frame.size()) + " bytes is over the limit of " +
                     std::to_string(kMaxFrameBytes));
  }
  // Small containers only (the big payloads are bins), shallow nesting: a hostile header cannot
  // make the parser reserve more than a few kilobytes per element it claims.
  const msgpack::unpack_limit limit(/*array=*/std::max(kMaxPeers, kMaxRouteStages), /*map=*/0,
                                    /*str=*/kMaxTextBytes, /*bin=*/kMaxFrameBytes, /*ext=*/0,
                                    /*depth=*/6);
  msgpack::object_handle handle;
  std::size_t offset = 0;
  // Strings and bins point into `frame` instead of being copied into the parser's zone: the
  // fields below copy what they keep before it returns, so an activation frame is copied once.
  auto in_place = [](msgpack::type::object_type, std::size_t, void*) { return true; };
  try {
    handle = msgpack::unpack(reinterpret_cast<const char*>(frame.data()), frame.size(), offset,
                             +in_place, nullptr, limit);
  } catch (const std::exception& e) {
    throw InputError(std::string("malformed frame (") + e.what() + ")");
  }
  if (offset != frame.size()) throw InputError("malformed frame (bytes after the end)");
  Fields envelope(handle.get(), "envelope");
  if (envelope.size() < 6) envelope.fail("too short");
  const uint64_t magic = envelope.u64();
  if (magic != kMagic) throw InputError("not a troupe frame (bad magic)");
  const uint64_t version = envelope.u64();
  if (version != kProtocolVersion) {
    throw InputError("protocol version " + std::to_string(version) + ", this node speaks " +
                     std::to_string(kProtocolVersion));
  }
  const uint64_t type = envelope.u64();
  if (!known_type(type)) throw InputError("unknown message type " + std::to_string(type));
  Message m;
  m.session = envelope.u64();
  m.seq = envelope.u64();
  m.body = read_body(static_cast<MessageType>(type), envelope.next());
  return m;
}

}  // namespace troupe::wire
