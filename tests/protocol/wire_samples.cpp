// The sample messages: one of each type with every field set, and variants at the edges.
#include <cmath>
#include <limits>

#include "wire_samples.hpp"

namespace troupe::wire_test {

using namespace troupe::wire;

namespace {

MemberInfo member_a() {
  MemberInfo a;
  a.name = "a";
  a.address = "127.0.0.1:7000";
  a.instance = 1700000000123456789ull;
  a.model = "52b9beb67a43d73b (5 layers)";
  a.model_layers = 5;
  a.mem_budget = uint64_t(3) << 30;
  a.throughput = 12.5;
  a.cores = 4;
  a.arch = "aarch64";
  a.pinned = LayerRange{0, 2};
  a.layers = LayerRange{0, 2};
  a.base_rss = uint64_t(19) << 20;
  return a;
}

Gossip sample_gossip() {
  MemberInfo b = member_a();
  b.name = "b";
  b.address = "10.0.0.3:9";
  b.pinned = std::nullopt;
  b.layers = std::nullopt;
  Gossip gossip;
  gossip.kind = Gossip::Kind::ping_req;
  gossip.probe = 77;
  gossip.from = "127.0.0.1:7000";
  gossip.target = "10.0.0.3:9";
  gossip.term = 4;
  gossip.coordinator = "127.0.0.1:7000";
  gossip.updates = {{member_a(), MemberState::alive, 3, {}}, {b, MemberState::suspect, 9, "127.0.0.1:7000"}};
  return gossip;
}

PlanAnnounce sample_plan() {
  PlanAnnounce plan;
  plan.term = 4;
  plan.coordinator = "127.0.0.1:7000";
  plan.version = 12;
  plan.stages = {{"a", "127.0.0.1:7000", {0, 2}}, {"b", "10.0.0.3:9", {2, 5}}};
  return plan;
}

SessionStart sample_session_start() {
  SessionStart start;
  start.entry = "127.0.0.1:7000";
  start.route = {{"127.0.0.1:7000", {0, 2}}, {"127.0.0.1:7001", {2, 5}}};
  start.sampling = {0.8f, 0.9f, 1234567890123ull};
  start.steps = 256;
  start.tokens = {1, 400, 511, 0};
  return start;
}

Activations sample_activations() {
  const float x[6] = {1.5f, -2.25f, 3e-8f, 1e30f, -0.0f, 42};
  Activations act = Activations::pack(x, 2, 3, ActivationEncoding::f32);
  act.pos = 17;
  act.sample = true;
  act.compute_us = 4321;
  return act;
}

GenerateRequest sample_generate() {
  GenerateRequest gen;
  gen.prompt = "Once upon a time \xe2\x9c\x93";
  gen.sampling = {0, 0.5f, 7};
  gen.steps = 0;
  gen.chat = true;
  gen.max_tokens = 40;
  gen.echo = false;
  gen.stop = {"\n\n", "The end"};
  gen.messages = {{"system", "Be brief."}, {"user", "Hi \xe2\x9c\x93"}};
  gen.chat_template = "llama3";
  return gen;
}

Done sample_done() {
  Done done;
  done.stats.prompt_tokens = 5;
  done.stats.generated_tokens = 100;
  done.stats.positions = 104;
  done.stats.first_token_ms = 1.5;
  done.stats.decode_ms = 20.25;
  done.stats.total_ms = 22;
  done.finish_reason = "length";
  return done;
}

Status sample_status() {
  Status status;
  status.self = "a";
  status.coordinator = "b";
  status.members = {{"a", "127.0.0.1:7000", "alive", LayerRange{0, 2}, 1 << 30, 9.5, 2, "x86_64"},
                    {"e", "127.0.0.1:7002", "dead", std::nullopt, 0, 0.0, 0, "", 42.5}};
  status.plan_version = 3;
  status.stages = {{"a", "127.0.0.1:7000", {0, 2}}};
  status.model_layers = 5;
  status.problem = "layers 2:5 are held by no live node";
  status.counters = {1, 7, 900, 1200, 3.25, 10, 2000, 11, 2100, 44, 0.0042, 6};
  status.counters.stage_passes = 400;
  status.counters.stage_pass_sessions = 1100;
  return status;
}

}  // namespace

std::vector<Message> samples() {
  return {
      {0xffffffffffffffffull, 3, sample_session_start()},
      {5, 4, Step{300, 17}},
      {6, 5, sample_activations()},
      {7, 6, Sampled{301, 2, 0x9e3779b97f4a7c15ull, 1234}},
      {8, 7, SessionEnd{"done"}},
      {9, 8, Error{2, "prompt too long"}},
      {0, 1, sample_generate()},
      {10, 9, Text{"piece"}},
      {10, 10, sample_done()},
      {0, 11, StatusRequest{}},
      {0, 12, sample_status()},
      {0, 13, sample_gossip()},
      {0, 14, sample_plan()},
      {11, 15, SessionProbe{302}},
  };
}

namespace {

// Unsigned values at each boundary of msgpack's integer encodings.
constexpr uint64_t kEdges[] = {0, 127, 128, 255, 256, 65535, 65536, 0xffffffffull, 0x100000000ull,
                               0xffffffffffffffffull};

std::vector<NamedMessage> session_variants() {
  SessionStart forwarded = sample_session_start();
  forwarded.route = {{std::string(256, 'r'), {0, 1 << 20}}};
  forwarded.sampling = {0, 1, 0};
  forwarded.steps = kMaxPositions;
  forwarded.tokens.clear();
  SessionStart edges = sample_session_start();
  edges.sampling = {1e30f, 0.0f, 0xffffffffffffffffull};
  edges.steps = 1;
  edges.tokens = {0, 127, 128, 65535, 65536, 2147483647};
  SessionStart resumed = sample_session_start();
  resumed.resume = 0xfedcba9876543210ull;
  resumed.resume_pos = 300;
  resumed.kept = {1};
  resumed.fill = {1};
  const float rows[8] = {0.5f, -1, 65504, 6e-8f, 1e-3f, 7, -0.0f, 3};
  Activations f16 = Activations::pack(rows, 2, 4, ActivationEncoding::f16);
  f16.pos = kMaxPositions;
  f16.compute_us = 0xffffffffffffffffull;
  Activations one_row;
  one_row.count = kMaxActivationRows;
  return {
      {"session_start_forwarded", {1, 1, forwarded}},
      {"session_start_edges", {0x100000000ull, 65536, edges}},
      {"session_start_resumed", {0x100000000ull, 7, resumed}},
      {"step_zero", {0, 0, Step{0, 0}}},
      {"step_edges", {128, 255, Step{kMaxPositions, 2147483647}}},
      {"activations_f16", {2, 3, f16}},
      {"activations_no_data", {0, 0, one_row}},
      {"sampled_zero", {0, 0, Sampled{}}},
      {"sampled_edges", {65535, 256, Sampled{kMaxPositions, 2147483647, 0, 0x100000000ull}}},
      {"session_end_empty", {3, 0, SessionEnd{""}}},
      {"session_end_long", {3, 1, SessionEnd{std::string(70000, 'z')}}},
      {"session_probe_zero", {0, 0, SessionProbe{0}}},
      {"session_probe_max", {0xffffffffffffffffull, 65536, SessionProbe{kMaxPositions}}},
      {"error_moved", {4, 2, Error{kMoved, "layers 2:5 moved"}}},
      {"error_edges", {4, 3, Error{255, std::string(31, 'e')}}},
      {"error_zero", {4, 4, Error{0, std::string(32, 'e')}}},
  };
}

std::vector<NamedMessage> client_variants() {
  GenerateRequest plain;
  plain.prompt = "hi";
  GenerateRequest full = sample_generate();
  full.sampling = {2.5f, 1.0f, 0xffffffffffffffffull};
  full.steps = kMaxPositions;
  full.max_tokens = kMaxPositions;
  full.stop.assign(kMaxStopStrings, std::string(kMaxNameBytes, 's'));
  full.messages.assign(40, {std::string(kMaxNameBytes, 'r'), std::string(300, 'c')});
  full.chat_template = std::string(kMaxNameBytes, 't');
  Done integral = sample_done();
  integral.stats = {0, 0, 0, 0.0, -1.0, 4294967296.0};
  integral.finish_reason = "";
  Done odd = sample_done();
  odd.stats.first_token_ms = NAN;
  odd.stats.decode_ms = INFINITY;
  odd.stats.total_ms = -0.5;
  odd.stats.prompt_tokens = kMaxPositions;
  return {
      {"generate_plain", {0, 0, plain}},
      {"generate_full", {0, 2, full}},
      {"text_empty", {1, 1, Text{""}}},
      {"text_str16", {1, 2, Text{std::string(300, 't')}}},
      {"done_integral", {1, 3, integral}},
      {"done_odd_floats", {1, 4, odd}},
  };
}

std::vector<NamedMessage> status_variants() {
  Status none;
  none.self = "";
  none.counters.hop_seconds = 1e-9;
  Status many = sample_status();
  many.term = 0xffffffffffffffffull;
  many.plan_version = 65536;
  many.serving = true;
  many.problem = "";
  many.model_layers = kMaxPositions;
  many.members.push_back({std::string(kMaxNameBytes, 'm'), "x:1", "suspect", LayerRange{4, 1 << 20},
                          0xffffffffffffffffull, NAN, 1 << 20, "riscv64"});
  many.members.push_back({"n", "y:2", "left", LayerRange{0, 1}, 1, -3.5, 0, "arm"});
  many.stages.push_back({"b", "10.0.0.3:9", {2, 5}});
  many.counters = {kEdges[9], kEdges[8], kEdges[7], kEdges[6], 0.0, kEdges[5], kEdges[4], kEdges[3],
                   kEdges[2], kEdges[1], 1e300, kEdges[9]};
  return {{"status_none", {0, 0, none}}, {"status_many", {0, 1, many}}};
}

std::vector<NamedMessage> mesh_variants() {
  std::vector<NamedMessage> out;
  for (int kind = 0; kind <= 4; kind++) {
    Gossip g;
    g.kind = static_cast<Gossip::Kind>(kind);
    g.probe = kEdges[2 * kind];
    g.term = kEdges[2 * kind + 1];
    g.from = "f";
    out.push_back({"gossip_kind_" + std::to_string(kind), {kEdges[kind], 0, g}});
  }
  Gossip states = sample_gossip();
  states.updates.clear();
  for (int s = 0; s <= 3; s++) {
    MemberInfo m = member_a();
    m.name = std::string(s == 3 ? kMaxNameBytes : 255, char('p' + s));
    m.instance = kEdges[s + 4];
    m.mem_budget = kEdges[9 - s];
    m.throughput = s == 0 ? 0.0 : 1e300 / s;
    m.cores = s == 3 ? 1 << 20 : s;
    m.model_layers = s == 3 ? kMaxPositions : 0;
    m.pinned = s == 1 ? std::optional<LayerRange>(LayerRange{1, 2}) : std::nullopt;
    m.layers = s == 2 ? std::optional<LayerRange>(LayerRange{0, 1 << 20}) : std::nullopt;
    states.updates.push_back({m, static_cast<MemberState>(s), kEdges[s], {}});
  }
  PlanAnnounce empty;
  empty.problem = std::string(40, 'q');
  out.push_back({"gossip_states", {0, 1, states}});
  out.push_back({"plan_empty", {0, 2, empty}});
  return out;
}

}  // namespace

std::vector<NamedMessage> rich_samples() {
  std::vector<NamedMessage> out;
  for (const Message& m : samples()) out.push_back({type_name(m.type()), m});
  for (auto variants : {session_variants, client_variants, status_variants, mesh_variants}) {
    for (NamedMessage& v : variants()) out.push_back(std::move(v));
  }
  return out;
}

}  // namespace troupe::wire_test
