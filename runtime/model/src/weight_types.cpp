#include "troupe/model/weight_types.hpp"

#include <array>

#include "troupe/model/error.hpp"

namespace troupe {

namespace {

// One row per kernels::WeightType, in its order.
constexpr std::array<WeightTypeInfo, kernels::kWeightTypes> kTypes = {{
    {.type = WeightType::f32, .ggml = GgmlType::f32, .llama_file_type = 0},  // LLAMA_FTYPE_ALL_F32
    {.type = WeightType::f16, .ggml = GgmlType::f16, .llama_file_type = 1},  // MOSTLY_F16
    {.type = WeightType::q8_0,
     .ggml = GgmlType::q8_0,
     .llama_file_type = 7,  // LLAMA_FTYPE_MOSTLY_Q8_0
     .quantize_on_load = true},
    {.type = WeightType::q4_0,
     .ggml = GgmlType::q4_0,
     .llama_file_type = 2,  // LLAMA_FTYPE_MOSTLY_Q4_0
     .quantize_on_load = true},
    // llama2.c version 2 checkpoints only: no ggml type, so no GGUF file and no name to give.
    {.type = WeightType::q8_groups, .ggml = std::nullopt, .llama_file_type = std::nullopt},
}};

constexpr bool in_order() {
  for (std::size_t i = 0; i < kTypes.size(); i++) {
    if (static_cast<std::size_t>(kTypes[i].type) != i) return false;
  }
  return true;
}
static_assert(in_order(), "one row per WeightType, in its order");

}  // namespace

std::span<const WeightTypeInfo> weight_types() { return kTypes; }

const WeightTypeInfo& weight_type_info(WeightType type) {
  return kTypes[static_cast<std::size_t>(type)];
}

const char* weight_type_name(WeightType type) { return kernels::type_traits(type).name; }

std::optional<WeightType> find_weight_type(std::string_view name) {
  for (const WeightTypeInfo& t : weight_types()) {
    if (t.ggml && name == weight_type_name(t.type)) return t.type;
  }
  return std::nullopt;
}

WeightType parse_weight_type(const std::string& name, const std::string& flag) {
  if (const std::optional<WeightType> t = find_weight_type(name)) return *t;
  throw InputError(flag + ": unknown weight type '" + name + "' (" +
                   list_names(named_weight_types(), " or ") + ")");
}

std::optional<WeightType> weight_type_of_ggml(uint32_t ggml) {
  for (const WeightTypeInfo& t : weight_types()) {
    if (t.ggml && static_cast<uint32_t>(*t.ggml) == ggml) return t.type;
  }
  return std::nullopt;
}

std::vector<std::string> named_weight_types() {
  std::vector<std::string> names;
  for (const WeightTypeInfo& t : weight_types()) {
    if (t.ggml) names.emplace_back(weight_type_name(t.type));
  }
  return names;
}

std::vector<std::string> quantize_on_load_types() {
  std::vector<std::string> names;
  for (const WeightTypeInfo& t : weight_types()) {
    if (t.quantize_on_load) names.emplace_back(weight_type_name(t.type));
  }
  return names;
}

std::string quantize_flag_help() {
  std::vector<std::string> plain;  // what is quantized: the named types of plain floats
  for (const WeightTypeInfo& t : weight_types()) {
    if (t.ggml && !kernels::type_traits(t.type).quantized) plain.emplace_back(weight_type_name(t.type));
  }
  std::string sources;
  for (const std::string& name : plain) sources += (sources.empty() ? "" : "/") + name;
  return "Quantize " + sources + " weights on load: " + list_names(quantize_on_load_types(), " or ");
}

std::string type_flag_help() {
  std::vector<std::string> names = named_weight_types();
  names.front() += " (default)";  // f32: convert and synth write floats unless told otherwise
  return "Type of the matrices: " + list_names(names, ", ");
}

std::string list_names(const std::vector<std::string>& names, const char* last) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); i++) {
    if (i > 0) out += i + 1 == names.size() ? last : ", ";
    out += names[i];
  }
  return out;
}

}  // namespace troupe
