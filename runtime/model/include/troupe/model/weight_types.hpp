// The weight types as model files and the command line know them: one row per kernels::WeightType
// (what a type is and its kernels: troupe/kernels/kernels.hpp) with its ggml type and llama.cpp
// file type where GGUF files hold it, and whether --quantize produces it. Every name, size, parse
// and file-type mapping outside the kernels reads this table (weight_types.cpp);
// docs/weight-types.md says how a type is added.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "troupe/kernels/kernels.hpp"
#include "troupe/model/gguf.hpp"

namespace troupe {

using WeightType = kernels::WeightType;

struct WeightTypeInfo {
  WeightType type;
  // Its ggml type, where GGUF files hold it: then files of it are read and written (convert,
  // synth --type) and its name is accepted on the command line.
  std::optional<GgmlType> ggml;
  // general.file_type (llama.cpp's llama_ftype) of a file whose matrices are of this type.
  std::optional<uint32_t> llama_file_type;
  // A --quantize target: f32 / f16 matrices are quantized to it while loading.
  bool quantize_on_load = false;
};

// Every type, in WeightType's order.
std::span<const WeightTypeInfo> weight_types();
const WeightTypeInfo& weight_type_info(WeightType type);
// The kernels' name ("q8_0"; llama2.c's groups: "q8 (llama2.c groups)").
const char* weight_type_name(WeightType type);

// The type of a name given on the command line or in a scenario: a type with a ggml type.
std::optional<WeightType> find_weight_type(std::string_view name);
// find_weight_type's; throws InputError naming `flag` for anything else.
WeightType parse_weight_type(const std::string& name, const std::string& flag);
// The type troupe computes ggml type `ggml` with, if any.
std::optional<WeightType> weight_type_of_ggml(uint32_t ggml);

// The names of the types with a ggml type ("f32", "f16", "q8_0", "q4_0"), and of the --quantize
// targets ("q8_0", "q4_0"), in the table's order.
std::vector<std::string> named_weight_types();
std::vector<std::string> quantize_on_load_types();
// Names for a message: "a, b, c" with `last` (", ", " or ", " and ") before the last one.
std::string list_names(const std::vector<std::string>& names, const char* last);

// The help of the flags that name weight types: --quantize (run, bench: "Quantize f32/f16
// weights on load: q8_0 or q4_0") and --type (convert, synth: "Type of the matrices: f32
// (default), f16, q8_0, q4_0").
std::string quantize_flag_help();
std::string type_flag_help();

}  // namespace troupe
