// GGUF version 3, the llama.cpp ecosystem's model container: a header, typed key/value
// metadata, a table of tensor descriptions, then tensor data at an aligned offset.
//
// GgufFile reads a memory-mapped file and validates every count, string length, array length,
// tensor shape and tensor extent against the file size before handing anything out; problems
// throw InputError naming the file and what is wrong. GgufWriter writes ordinary GGUF v3 files
// that other GGUF readers (llama.cpp's) accept.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "troupe/model/mapped_file.hpp"

namespace troupe {

// ggml tensor types, numbered as in ggml.h. Those troupe computes with are the ones a
// WeightType maps to (weight_types.hpp); the others are still described (troupe info).
enum class GgmlType : uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
  q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15,
  iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22,
  iq4_xs = 23, i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30,
  tq1_0 = 34, tq2_0 = 35, mxfp4 = 39,
};
// Name of any ggml type number, including ones troupe does not support ("q4_K", "bf16", ...).
std::string ggml_type_name(uint32_t type);
// True when a WeightType maps to it (weight_types.hpp).
bool ggml_type_supported(uint32_t type);
// Bytes of `count` values of a supported type (count a multiple of its block size: 32 for the
// quantized types, 1 otherwise); throws InputError when not a whole number of blocks.
uint64_t ggml_type_bytes(GgmlType type, uint64_t count);
int ggml_block_size(GgmlType type);

// GGUF metadata value types (numbering as in the GGUF spec).
enum class GgufValueType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8,
  array = 9, u64 = 10, i64 = 11, f64 = 12,
};

struct GgufArray;
// A metadata value. Integers of every width are held as int64/uint64, floats as double, with
// the original type kept in GgufValue::type.
struct GgufValue {
  GgufValueType type = GgufValueType::u32;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<GgufArray>> value;
};
struct GgufArray {
  GgufValueType element_type = GgufValueType::u32;
  std::vector<GgufValue> items;  // for numeric and bool arrays
  std::vector<std::string> strings;  // for string arrays (kept apart: vocabularies are large)
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // ne[0] first: ne[0] is the contiguous (innermost) dimension
  uint32_t type = 0;           // a ggml type number (may be unsupported: checked on use)
  uint64_t offset = 0;         // from the start of the tensor data section
  uint64_t elements() const;
  const std::byte* data = nullptr;  // into the mapping; null for unsupported types
  uint64_t bytes = 0;
};

class GgufFile {
 public:
  // Throws InputError (naming the file) for anything malformed.
  explicit GgufFile(MappedFile file);
  static GgufFile open(const std::string& path) { return GgufFile(MappedFile(path)); }

  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const MappedFile& file() const { return file_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;
  // Typed getters: nullopt when absent; InputError (naming the key) when present with a type
  // that does not convert (an integer getter accepts any integer type in range).
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;  // any numeric type
  std::optional<bool> get_bool(std::string_view key) const;
  const GgufArray* get_array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  MappedFile file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
};

// Renders a value for people (`troupe info`): arrays are summarised, long strings cut.
std::string describe(const GgufValue& value);

class GgufWriter {
 public:
  void set(std::string key, GgufValue value);
  void set_string(std::string key, std::string v);
  void set_u32(std::string key, uint32_t v);
  void set_i32(std::string key, int32_t v);
  void set_f32(std::string key, float v);
  void set_bool(std::string key, bool v);
  void set_string_array(std::string key, std::vector<std::string> v);
  void set_f32_array(std::string key, const std::vector<float>& v);
  void set_i32_array(std::string key, const std::vector<int32_t>& v);

  // Declares a tensor; its bytes come from `fill` when write() reaches it, so multi-gigabyte
  // models stream out without being held in memory. dims ne[0] first.
  using Fill = std::function<void(std::span<std::byte> out)>;
  void add_tensor(std::string name, std::vector<uint64_t> dims, GgmlType type, Fill fill);

  // Writes the file (alignment from general.alignment if set, else 32). Throws RuntimeFailure
  // on I/O errors. `progress(done_bytes, total_bytes)` is called as tensor data is written.
  void write(const std::string& path,
             const std::function<void(uint64_t, uint64_t)>& progress = {}) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;
    GgmlType type;
    Fill fill;
  };
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace troupe
