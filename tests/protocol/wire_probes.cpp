// Frames aimed at each of the decoder's checks, made by editing a sample's msgpack tree: a field
// replaced by a value of another kind or range, an array cut short or grown past a limit.
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <msgpack.hpp>
#include <stdexcept>

#include "wire_samples.hpp"

namespace troupe::wire_test {

using namespace troupe::wire;

namespace {

// A frame's msgpack tree, edited in place and packed again. A path indexes arrays from the
// envelope down: {5, 1, 0} is the first element of the payload's second field.
class Edit {
 public:
  explicit Edit(const std::vector<uint8_t>& frame)
      : handle_(msgpack::unpack(reinterpret_cast<const char*>(frame.data()), frame.size())),
        root_(handle_.get()) {}

  template <class T>
  Edit& set(std::initializer_list<int> path, const T& value) {
    at(path) = msgpack::object(value, *handle_.zone());
    return *this;
  }
  // Cuts the array short, or grows it with copies of its last element.
  Edit& resize(std::initializer_list<int> path, uint32_t n) {
    msgpack::object& o = at(path);
    auto* grown = static_cast<msgpack::object*>(handle_.zone()->allocate_align(sizeof(msgpack::object) * n));
    for (uint32_t i = 0; i < n; i++) grown[i] = o.via.array.ptr[std::min(i, o.via.array.size - 1)];
    o.via.array = {n, grown};
    return *this;
  }
  operator std::vector<uint8_t>() const {
    msgpack::sbuffer buffer;
    msgpack::pack(buffer, root_);
    const auto* data = reinterpret_cast<const uint8_t*>(buffer.data());
    return {data, data + buffer.size()};
  }

 private:
  msgpack::object& at(std::initializer_list<int> path) {
    msgpack::object* o = &root_;
    for (int i : path) {
      if (o->type != msgpack::type::ARRAY || uint32_t(i) >= o->via.array.size) {
        throw std::logic_error("probe path leaves the frame");
      }
      o = &o->via.array.ptr[i];
    }
    return *o;
  }

  msgpack::object_handle handle_;
  msgpack::object root_;
};

Edit edit(const char* sample) {
  for (const NamedMessage& m : rich_samples()) {
    if (m.name == sample) return Edit(encode(m.message));
  }
  throw std::logic_error(std::string("no sample named ") + sample);
}

const msgpack::type::nil_t nil;
const std::string long_name(kMaxNameBytes + 1, 'n');
const std::string long_text(kMaxTextBytes + 1, 't');
const std::vector<char> five_bytes(5, 1);
constexpr int64_t kInt32Over = int64_t(INT32_MAX) + 1;

std::vector<NamedFrame> envelope_probes() {
  return {
      {"envelope_5_elements", edit("status_request").resize({}, 5)},
      {"envelope_7_elements", edit("status_request").resize({}, 7)},
      {"magic_wrong", edit("status_request").set({0}, 0x54525551)},
      {"version_1", edit("status_request").set({1}, 1)},
      {"version_3", edit("status_request").set({1}, 3)},
      {"type_0", edit("status_request").set({2}, 0)},
      {"type_1", edit("status_request").set({2}, 1)},
      {"type_10", edit("status_request").set({2}, 10)},
      {"type_21", edit("status_request").set({2}, 21)},
      {"type_string", edit("status_request").set({2}, "step")},
      {"type_step_empty_payload", edit("status_request").set({2}, 3)},
      {"session_negative", edit("status_request").set({3}, int64_t(-1))},
      {"seq_float", edit("status_request").set({4}, 1.5)},
      {"payload_not_array", edit("status_request").set({5}, 7)},
      {"payload_nil", edit("status_request").set({5}, nil)},
      {"status_request_with_fields", edit("status_request").set({5}, std::vector<int>{1, 2})},
  };
}

std::vector<NamedFrame> appended_probes() {
  return {
      {"generate_4_fields", edit("generate").resize({5}, 4)},
      {"generate_5_fields", edit("generate").resize({5}, 5)},
      {"generate_8_fields", edit("generate").resize({5}, 8)},
      {"generate_10_fields", edit("generate").resize({5}, 10)},
      {"generate_3_fields", edit("generate").resize({5}, 3)},
      {"done_6_fields", edit("done").resize({5}, 6)},
      {"done_5_fields", edit("done").resize({5}, 5)},
      {"activations_5_fields", edit("activations").resize({5}, 5)},
      {"activations_4_fields", edit("activations").resize({5}, 4)},
      {"sampled_3_fields", edit("sampled").resize({5}, 3)},
      {"sampled_2_fields", edit("sampled").resize({5}, 2)},
      {"status_9_fields", edit("status").resize({5}, 9)},
      {"status_8_fields", edit("status").resize({5}, 8)},
      {"status_counters_10", edit("status").resize({5, 9}, 10)},
      {"status_counters_12", edit("status").resize({5, 9}, 12)},
      {"status_member_8_fields", edit("status").resize({5, 3, 1}, 8)},
      {"status_member_7_fields", edit("status").resize({5, 3, 1}, 7)},
      {"status_member_9_fields", edit("status").resize({5, 3, 1}, 9)},
      {"status_since_negative", edit("status").set({5, 3, 1, 8}, -1.0)},
      {"step_3_fields", edit("step").resize({5}, 3)},
      {"step_1_field", edit("step").resize({5}, 1)},
      {"session_probe_0_fields", edit("session_probe").resize({5}, 0)},
      {"session_probe_2_fields", edit("session_probe").resize({5}, 2)},
  };
}

std::vector<NamedFrame> integer_probes() {
  return {
      {"step_pos_float", edit("step").set({5, 0}, 1.5)},
      {"step_pos_string", edit("step").set({5, 0}, "1")},
      {"step_pos_negative", edit("step").set({5, 0}, int64_t(-1))},
      {"step_pos_max", edit("step").set({5, 0}, kMaxPositions)},
      {"step_pos_over", edit("step").set({5, 0}, kMaxPositions + 1)},
      {"step_token_int32_max", edit("step").set({5, 1}, INT32_MAX)},
      {"step_token_over", edit("step").set({5, 1}, kInt32Over)},
      {"step_token_u64_max", edit("step").set({5, 1}, UINT64_MAX)},
      {"step_token_i64_min", edit("step").set({5, 1}, INT64_MIN)},
      {"session_probe_pos_negative", edit("session_probe").set({5, 0}, int64_t(-1))},
      {"session_probe_pos_over", edit("session_probe").set({5, 0}, kMaxPositions + 1)},
      {"session_probe_pos_string", edit("session_probe").set({5, 0}, "3")},
      {"session_probe_pos_nil", edit("session_probe").set({5, 0}, nil)},
      {"sampled_rng_negative", edit("sampled").set({5, 2}, int64_t(-5))},
      {"sampled_rng_bool", edit("sampled").set({5, 2}, true)},
      {"sampled_compute_float", edit("sampled").set({5, 3}, 2.5)},
      {"activations_count_0", edit("activations").set({5, 1}, 0)},
      {"activations_count_1024", edit("activations").set({5, 1}, 1024)},
      {"activations_count_1025", edit("activations").set({5, 1}, 1025)},
      {"activations_encoding_1", edit("activations").set({5, 3}, 1)},
      {"activations_encoding_2", edit("activations").set({5, 3}, 2)},
      {"activations_sample_int", edit("activations").set({5, 2}, 1)},
      {"activations_data_string", edit("activations").set({5, 4}, "abcd")},
      {"activations_data_empty", edit("activations").set({5, 4}, std::vector<char>{})},
      {"activations_compute_negative", edit("activations").set({5, 5}, int64_t(-1))},
      {"error_code_255", edit("error").set({5, 0}, 255)},
      {"error_code_256", edit("error").set({5, 0}, 256)},
      {"error_code_negative", edit("error").set({5, 0}, int64_t(-2))},
      {"error_message_nil", edit("error").set({5, 1}, nil)},
      {"done_prompt_tokens_over", edit("done").set({5, 0}, kMaxPositions + 1)},
      {"done_ms_string", edit("done").set({5, 3}, "1.5")},
      {"done_ms_int", edit("done").set({5, 4}, 20)},
      {"done_reason_nil", edit("done").set({5, 6}, nil)},
      {"done_reason_long", edit("done").set({5, 6}, long_name)},
  };
}

std::vector<NamedFrame> session_probes() {
  return {
      {"session_steps_0", edit("session_start").set({5, 3}, 0)},
      {"session_steps_over", edit("session_start").set({5, 3}, kMaxPositions + 1)},
      {"session_tokens_5_bytes", edit("session_start").set({5, 4}, five_bytes)},
      {"session_tokens_string", edit("session_start").set({5, 4}, "abcd")},
      {"session_tokens_empty", edit("session_start").set({5, 4}, std::vector<char>{})},
      {"session_entry_long", edit("session_start").set({5, 0}, long_name)},
      {"session_route_256", edit("session_start").resize({5, 1}, 256)},
      {"session_route_257", edit("session_start").resize({5, 1}, 257)},
      {"session_route_not_array", edit("session_start").set({5, 1}, "r")},
      {"session_stage_short", edit("session_start").resize({5, 1, 0}, 1)},
      {"session_stage_layers_nil", edit("session_start").set({5, 1, 0, 1}, nil)},
      {"session_layers_empty", edit("session_start").set({5, 1, 0, 1}, std::vector<int>{3, 3})},
      {"session_layers_reversed", edit("session_start").set({5, 1, 0, 1}, std::vector<int>{3, 2})},
      {"session_layers_one", edit("session_start").resize({5, 1, 0, 1}, 1)},
      {"session_layers_three", edit("session_start").resize({5, 1, 0, 1}, 3)},
      {"session_layers_negative", edit("session_start").set({5, 1, 0, 1, 0}, int64_t(-1))},
      {"session_layers_end_max", edit("session_start").set({5, 1, 0, 1, 1}, kMaxPositions)},
      {"session_layers_end_over", edit("session_start").set({5, 1, 0, 1, 1}, kMaxPositions + 1)},
      {"session_temperature_negative", edit("session_start").set({5, 2, 0}, -0.5)},
      {"session_temperature_nan", edit("session_start").set({5, 2, 0}, NAN)},
      {"session_temperature_huge", edit("session_start").set({5, 2, 0}, 1e300)},
      {"session_temperature_int", edit("session_start").set({5, 2, 0}, 3)},
      {"session_topp_over", edit("session_start").set({5, 2, 1}, 1.5)},
      {"session_topp_int_1", edit("session_start").set({5, 2, 1}, 1)},
      {"session_topp_negative", edit("session_start").set({5, 2, 1}, -0.25)},
      {"session_seed_negative", edit("session_start").set({5, 2, 2}, int64_t(-1))},
      {"session_sampling_short", edit("session_start").resize({5, 2}, 2)},
      {"session_sampling_long", edit("session_start").resize({5, 2}, 4)},
  };
}

std::vector<NamedFrame> client_probes() {
  return {
      {"generate_stop_16", edit("generate").resize({5, 6}, 16)},
      {"generate_stop_17", edit("generate").resize({5, 6}, 17)},
      {"generate_stop_long", edit("generate").set({5, 6, 0}, long_name)},
      {"generate_stop_int", edit("generate").set({5, 6, 0}, 5)},
      {"generate_messages_256", edit("generate").resize({5, 7}, 256)},
      {"generate_messages_257", edit("generate").resize({5, 7}, 257)},
      {"generate_messages_1024", edit("generate").resize({5, 7}, 1024)},
      {"generate_messages_1025", edit("generate").resize({5, 7}, 1025)},
      {"generate_role_long", edit("generate").set({5, 7, 0, 0}, long_name)},
      {"generate_content_long", edit("generate").set({5, 7, 0, 1}, long_text)},
      {"generate_message_short", edit("generate").resize({5, 7, 0}, 1)},
      {"generate_max_tokens_negative", edit("generate").set({5, 4}, int64_t(-1))},
      {"generate_steps_over", edit("generate").set({5, 2}, kMaxPositions + 1)},
      {"generate_echo_int", edit("generate").set({5, 5}, 0)},
      {"generate_template_long", edit("generate").set({5, 8}, long_name)},
      {"generate_prompt_nil", edit("generate").set({5, 0}, nil)},
      {"generate_prompt_long", edit("generate").set({5, 0}, long_text)},
      {"generate_topp_nan", edit("generate").set({5, 1, 1}, NAN)},
      {"text_over", edit("text").set({5, 0}, long_text)},
      {"text_bin", edit("text").set({5, 0}, five_bytes)},
      {"session_end_int", edit("session_end").set({5, 0}, 1)},
  };
}

std::vector<NamedFrame> mesh_probes() {
  return {
      {"gossip_kind_5", edit("gossip").set({5, 0}, 5)},
      {"gossip_from_nil", edit("gossip").set({5, 2}, nil)},
      {"gossip_target_long", edit("gossip").set({5, 3}, long_name)},
      {"gossip_coordinator_int", edit("gossip").set({5, 5}, 1)},
      {"gossip_updates_256", edit("gossip").resize({5, 6}, 256)},
      {"gossip_updates_257", edit("gossip").resize({5, 6}, 257)},
      {"gossip_update_short", edit("gossip").resize({5, 6, 0}, 2)},
      {"gossip_state_4", edit("gossip").set({5, 6, 0, 1}, 4)},
      {"gossip_incarnation_negative", edit("gossip").set({5, 6, 0, 2}, int64_t(-1))},
      {"gossip_member_short", edit("gossip").resize({5, 6, 0, 0}, 10)},
      {"gossip_update_3_fields", edit("gossip").resize({5, 6, 1}, 3)},
      {"gossip_by_long", edit("gossip").set({5, 6, 1, 3}, long_name)},
      {"gossip_by_int", edit("gossip").set({5, 6, 1, 3}, 7)},
      {"gossip_member_long_name", edit("gossip").set({5, 6, 0, 0, 0}, long_name)},
      {"gossip_member_layers_negative", edit("gossip").set({5, 6, 0, 0, 4}, int64_t(-1))},
      {"gossip_throughput_negative", edit("gossip").set({5, 6, 0, 0, 6}, -1.5)},
      {"gossip_throughput_inf", edit("gossip").set({5, 6, 0, 0, 6}, INFINITY)},
      {"gossip_throughput_int", edit("gossip").set({5, 6, 0, 0, 6}, 7)},
      {"gossip_cores_over", edit("gossip").set({5, 6, 0, 0, 7}, (1 << 20) + 1)},
      {"gossip_pinned_nil", edit("gossip").set({5, 6, 0, 0, 9}, nil)},
      {"gossip_member_11_fields", edit("gossip").resize({5, 6, 0, 0}, 11)},
      {"gossip_base_rss_negative", edit("gossip").set({5, 6, 0, 0, 11}, int64_t(-1))},
      {"gossip_pinned_empty", edit("gossip").set({5, 6, 0, 0, 9}, std::vector<int>{2, 2})},
      {"plan_stages_257", edit("plan").resize({5, 3}, 257)},
      {"plan_stage_layers_nil", edit("plan").set({5, 3, 0, 2}, nil)},
      {"plan_stage_node_int", edit("plan").set({5, 3, 0, 0}, 1)},
      {"plan_problem_over", edit("plan").set({5, 4}, long_text)},
      {"plan_version_negative", edit("plan").set({5, 2}, int64_t(-1))},
  };
}

std::vector<NamedFrame> status_probes() {
  return {
      {"status_coordinator_nil", edit("status").set({5, 2}, nil)},
      {"status_coordinator_int", edit("status").set({5, 2}, 1)},
      {"status_coordinator_long", edit("status").set({5, 2}, long_name)},
      {"status_members_257", edit("status").resize({5, 3}, 257)},
      {"status_member_throughput_nan", edit("status").set({5, 3, 0, 5}, NAN)},
      {"status_member_cores_over", edit("status").set({5, 3, 0, 6}, (1 << 20) + 1)},
      {"status_member_layers_nil", edit("status").set({5, 3, 0, 3}, nil)},
      {"status_member_state_int", edit("status").set({5, 3, 0, 2}, 0)},
      {"status_member_short", edit("status").resize({5, 3, 0}, 7)},
      {"status_stages_nil", edit("status").set({5, 5}, nil)},
      {"status_serving_int", edit("status").set({5, 7}, 1)},
      {"status_counter_float", edit("status").set({5, 9, 0}, 1.5)},
      {"status_counter_seconds_int", edit("status").set({5, 9, 4}, 3)},
      {"status_counters_nil", edit("status").set({5, 9}, nil)},
  };
}

}  // namespace

std::vector<NamedFrame> probe_frames() {
  std::vector<NamedFrame> out;
  for (auto group : {envelope_probes, appended_probes, integer_probes, session_probes, client_probes,
                     mesh_probes, status_probes}) {
    for (NamedFrame& f : group()) out.push_back(std::move(f));
  }
  return out;
}

}  // namespace troupe::wire_test
