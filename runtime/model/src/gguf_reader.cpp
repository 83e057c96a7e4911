// Reader for GGUF files (versions 2 and 3 share one layout; see gguf.hpp), plus the ggml type
// table the writer shares.
//
// Every count and length comes from an untrusted file, so each is checked against the bytes that
// remain before anything is reserved for it: a claimed string length of 2^63 ends in one clear
// InputError, never in bad_alloc or a read past the mapping.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>

#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"
#include "troupe/model/weight_types.hpp"

namespace troupe {
namespace {

constexpr uint32_t kMaxDims = 4;           // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 2;          // an array of arrays, no deeper
constexpr uint64_t kDefaultAlignment = 32;
// Counts are checked against the bytes left, but a value takes more room in memory than in the
// file (a u8 item becomes a GgufValue), so reserve at most this many up front and let the
// vectors grow as items are actually read.
constexpr uint64_t kMaxReserve = 1 << 16;

uint64_t reserve_for(uint64_t count) { return std::min(count, kMaxReserve); }

// Block size (values) and block bytes of every ggml type number; {0, 0} for numbers ggml has
// retired or not yet used. Kept for all types so a file's layout can be checked even where
// troupe cannot compute with the data.
struct GgmlLayout {
  const char* name;
  uint32_t block;
  uint32_t block_bytes;
};
constexpr GgmlLayout kTypes[] = {
    {"f32", 1, 4},         {"f16", 1, 2},        {"q4_0", 32, 18},     {"q4_1", 32, 20},
    {nullptr, 0, 0},       {nullptr, 0, 0},      {"q5_0", 32, 22},     {"q5_1", 32, 24},
    {"q8_0", 32, 34},      {"q8_1", 32, 36},     {"q2_K", 256, 84},    {"q3_K", 256, 110},
    {"q4_K", 256, 144},    {"q5_K", 256, 176},   {"q6_K", 256, 210},   {"q8_K", 256, 292},
    {"iq2_xxs", 256, 66},  {"iq2_xs", 256, 74},  {"iq3_xxs", 256, 98}, {"iq1_s", 256, 50},
    {"iq4_nl", 32, 18},    {"iq3_s", 256, 110},  {"iq2_s", 256, 82},   {"iq4_xs", 256, 136},
    {"i8", 1, 1},          {"i16", 1, 2},        {"i32", 1, 4},        {"i64", 1, 8},
    {"f64", 1, 8},         {"iq1_m", 256, 56},   {"bf16", 1, 2},       {nullptr, 0, 0},
    {nullptr, 0, 0},       {nullptr, 0, 0},      {"tq1_0", 256, 54},   {"tq2_0", 256, 66},
    {nullptr, 0, 0},       {nullptr, 0, 0},      {nullptr, 0, 0},      {"mxfp4", 32, 17},
};
constexpr uint32_t kTypeCount = sizeof kTypes / sizeof kTypes[0];

const GgmlLayout* traits(uint32_t type) {
  return type < kTypeCount && kTypes[type].name ? &kTypes[type] : nullptr;
}

const char* value_type_name(GgufValueType t) {
  static const char* const names[] = {"u8",  "i8",     "u16",    "i16",   "u32", "i32", "f32",
                                      "bool", "string", "array", "u64",   "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < std::size(names) ? names[i] : "unknown";
}

// Fewest bytes one value of a type takes in the file: bounds how many could fit in what remains.
uint64_t min_encoded_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::u8: case GgufValueType::i8: case GgufValueType::boolean: return 1;
    case GgufValueType::u16: case GgufValueType::i16: return 2;
    case GgufValueType::u32: case GgufValueType::i32: case GgufValueType::f32: return 4;
    case GgufValueType::u64: case GgufValueType::i64: case GgufValueType::f64: return 8;
    case GgufValueType::string: return 8;   // the length alone
    case GgufValueType::array: return 12;   // element type and count
  }
  return 1;
}

// Walks the file front to back with bounds-checked reads. `where` names the part being read
// (a key, a tensor) so a truncation message says what was cut off.
class Reader {
 public:
  explicit Reader(const MappedFile& file) : file_(file) {}

  [[noreturn]] void fail(const std::string& why) const { throw InputError(file_.path() + ": " + why); }
  // The same, naming the part of the file being read.
  [[noreturn]] void fail_here(const std::string& why) const {
    fail(where_.empty() ? why : where_ + ": " + why);
  }

  uint8_t u8(const char* what) { return scalar<uint8_t>(what); }
  uint32_t u32(const char* what) { return scalar<uint32_t>(what); }
  uint64_t u64(const char* what) { return scalar<uint64_t>(what); }
  template <class T>
  T scalar(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof v, what), sizeof v);
    return v;
  }
  std::string string(const char* what) {
    const uint64_t len = u64(what);
    const std::byte* p = take(len, what);
    return std::string(reinterpret_cast<const char*>(p), len);
  }
  // Throws unless `count` items of at least `min_bytes` each could still fit in the file.
  void check_count(uint64_t count, uint64_t min_bytes, const char* what) const {
    if (count > remaining() / min_bytes) {
      fail_here(std::string(what) + " claims a count of " + std::to_string(count) + " but only " +
                std::to_string(remaining()) + " bytes remain");
    }
  }
  uint64_t offset() const { return offset_; }
  uint64_t remaining() const { return file_.size() - offset_; }
  void set_where(std::string where) { where_ = std::move(where); }

 private:
  const std::byte* take(uint64_t n, const char* what) {
    if (n > remaining()) {
      fail((where_.empty() ? "truncated: the " : "truncated in " + where_ + ": the ") + what +
           " needs " + std::to_string(n) + " bytes at offset " + std::to_string(offset_) +
           " but the file has " + std::to_string(file_.size()));
    }
    const std::byte* p = file_.bytes().data() + offset_;
    offset_ += n;
    return p;
  }

  const MappedFile& file_;
  uint64_t offset_ = 0;
  std::string where_;
};

GgufValueType value_type(Reader& r, const char* what) {
  const uint32_t t = r.u32(what);
  if (t > static_cast<uint32_t>(GgufValueType::f64)) {
    r.fail_here(std::string("unknown ") + what + " " + std::to_string(t));
  }
  return static_cast<GgufValueType>(t);
}

// One value of type `type`; `depth` counts the arrays it sits in.
GgufValue read_value(Reader& r, GgufValueType type, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::u8: v.value = uint64_t{r.scalar<uint8_t>("value")}; break;
    case GgufValueType::u16: v.value = uint64_t{r.scalar<uint16_t>("value")}; break;
    case GgufValueType::u32: v.value = uint64_t{r.scalar<uint32_t>("value")}; break;
    case GgufValueType::u64: v.value = uint64_t{r.scalar<uint64_t>("value")}; break;
    case GgufValueType::i8: v.value = int64_t{r.scalar<int8_t>("value")}; break;
    case GgufValueType::i16: v.value = int64_t{r.scalar<int16_t>("value")}; break;
    case GgufValueType::i32: v.value = int64_t{r.scalar<int32_t>("value")}; break;
    case GgufValueType::i64: v.value = int64_t{r.scalar<int64_t>("value")}; break;
    case GgufValueType::f32: v.value = double{r.scalar<float>("value")}; break;
    case GgufValueType::f64: v.value = r.scalar<double>("value"); break;
    case GgufValueType::boolean: v.value = r.u8("value") != 0; break;  // as llama.cpp reads it
    case GgufValueType::string: v.value = r.string("string"); break;
    case GgufValueType::array: {
      auto a = std::make_shared<GgufArray>();
      a->element_type = value_type(r, "array element type");
      if (a->element_type == GgufValueType::array && depth + 1 >= kMaxArrayDepth) {
        r.fail_here("arrays nested more than " + std::to_string(kMaxArrayDepth) + " deep");
      }
      const uint64_t n = r.u64("array length");
      r.check_count(n, min_encoded_bytes(a->element_type), "array");
      if (a->element_type == GgufValueType::string) {
        a->strings.reserve(reserve_for(n));
        for (uint64_t i = 0; i < n; i++) a->strings.push_back(r.string("string"));
      } else {
        a->items.reserve(reserve_for(n));
        for (uint64_t i = 0; i < n; i++) a->items.push_back(read_value(r, a->element_type, depth + 1));
      }
      v.value = std::move(a);
      break;
    }
  }
  return v;
}

uint64_t round_up(uint64_t x, uint64_t alignment) { return x + (alignment - x % alignment) % alignment; }

}  // namespace

std::string ggml_type_name(uint32_t type) {
  const GgmlLayout* t = traits(type);
  return t ? t->name : "unknown type " + std::to_string(type);
}

bool ggml_type_supported(uint32_t type) { return weight_type_of_ggml(type).has_value(); }

namespace {
// The supported ggml types' names in ggml's numbering.
std::string supported_names() {
  std::vector<std::string> names;
  for (uint32_t type = 0; type < kTypeCount; type++) {
    if (ggml_type_supported(type)) names.push_back(kTypes[type].name);
  }
  return list_names(names, " and ");
}

const GgmlLayout& supported_traits(GgmlType type) {
  if (!ggml_type_supported(static_cast<uint32_t>(type))) {
    throw InputError("ggml type " + ggml_type_name(static_cast<uint32_t>(type)) +
                     " is not supported (" + supported_names() + " are)");
  }
  return kTypes[static_cast<uint32_t>(type)];
}
}  // namespace

int ggml_block_size(GgmlType type) { return static_cast<int>(supported_traits(type).block); }

uint64_t ggml_type_bytes(GgmlType type, uint64_t count) {
  const GgmlLayout& t = supported_traits(type);
  if (count % t.block != 0) {
    throw InputError(std::to_string(count) + " values of type " + t.name +
                     " are not a whole number of " + std::to_string(t.block) + "-value blocks");
  }
  if (count / t.block > std::numeric_limits<uint64_t>::max() / t.block_bytes) {
    throw InputError(std::to_string(count) + " values of type " + t.name + " overflow a byte count");
  }
  return count / t.block * t.block_bytes;
}

uint64_t GgufTensorInfo::elements() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

namespace {

// The key/value pairs, in file order; keys non-empty and unique.
std::vector<std::pair<std::string, GgufValue>> read_metadata(Reader& r, uint64_t kv_count) {
  std::vector<std::pair<std::string, GgufValue>> metadata;
  metadata.reserve(reserve_for(kv_count));
  std::set<std::string, std::less<>> keys;
  for (uint64_t i = 0; i < kv_count; i++) {
    r.set_where("metadata entry " + std::to_string(i));
    std::string key = r.string("key");
    if (key.empty()) r.fail("metadata entry " + std::to_string(i) + " has an empty key");
    if (!keys.insert(key).second) r.fail("duplicate metadata key '" + key + "'");
    r.set_where("metadata key '" + key + "'");
    const GgufValueType type = value_type(r, "value type");
    GgufValue value = read_value(r, type, 0);
    metadata.emplace_back(std::move(key), std::move(value));
  }
  return metadata;
}

// general.alignment if given (a u32 power of two), else the default.
uint64_t read_alignment(const Reader& r, const GgufValue* a) {
  if (!a) return kDefaultAlignment;
  if (a->type != GgufValueType::u32) {
    r.fail(std::string("general.alignment must be a u32, not ") + value_type_name(a->type));
  }
  const uint64_t alignment = std::get<uint64_t>(a->value);
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    r.fail("general.alignment " + std::to_string(alignment) + " is not a power of two");
  }
  return alignment;
}

// One tensor info: its name (not among `names`, which gets it), shape (1 to 4 dimensions, none
// zero, the product within int64), type and aligned offset, and for a known ggml type its bytes
// (rows whole blocks).
GgufTensorInfo read_tensor_info(Reader& r, uint64_t alignment,
                                std::set<std::string, std::less<>>& names) {
  GgufTensorInfo t;
  t.name = r.string("tensor name");
  if (!names.insert(t.name).second) r.fail("duplicate tensor name '" + t.name + "'");
  r.set_where("tensor '" + t.name + "'");
  const std::string tensor = "tensor '" + t.name + "'";
  const uint32_t n_dims = r.u32("dimension count");
  if (n_dims < 1 || n_dims > kMaxDims) {
    r.fail(tensor + " has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
  }
  // ggml holds shapes and sizes in int64: every dimension and their product must fit one.
  uint64_t elements = 1;
  for (uint32_t d = 0; d < n_dims; d++) {
    const uint64_t ne = r.u64("dimension");
    if (ne == 0) r.fail(tensor + " has a zero dimension");
    if (ne > uint64_t(std::numeric_limits<int64_t>::max()) / elements) {
      r.fail(tensor + " has more elements than a 64-bit count holds");
    }
    elements *= ne;
    t.dims.push_back(ne);
  }
  t.type = r.u32("tensor type");
  t.offset = r.u64("tensor data offset");
  if (t.offset % alignment != 0) {
    r.fail(tensor + " data offset " + std::to_string(t.offset) + " is not a multiple of the " +
           "alignment " + std::to_string(alignment));
  }
  if (const GgmlLayout* tt = traits(t.type)) {
    if (t.dims[0] % tt->block != 0) {
      r.fail(tensor + " of type " + tt->name + " has rows of " + std::to_string(t.dims[0]) +
             " values, not a multiple of its " + std::to_string(tt->block) + "-value blocks");
    }
    const uint64_t blocks = elements / tt->block;
    if (blocks > std::numeric_limits<uint64_t>::max() / tt->block_bytes) {
      r.fail(tensor + " has more bytes than a 64-bit size holds");
    }
    t.bytes = blocks * tt->block_bytes;
  }
  return t;
}

}  // namespace

GgufFile::GgufFile(MappedFile file) : file_(std::move(file)) {
  Reader r(file_);
  if (file_.size() < 4 || std::memcmp(file_.bytes().data(), "GGUF", 4) != 0) {
    r.fail("not a GGUF file (it does not start with \"GGUF\")");
  }
  r.u32("magic");
  version_ = r.u32("version");
  if ((version_ & 0xffff) == 0 && version_ != 0) {
    r.fail("GGUF version field reads " + std::to_string(version_) +
           ": a big-endian file? Only little-endian GGUF is supported");
  }
  if (version_ != 2 && version_ != 3) {
    r.fail("GGUF version " + std::to_string(version_) + " is not supported (versions 2 and 3 are)");
  }
  const uint64_t tensor_count = r.u64("tensor count");
  const uint64_t kv_count = r.u64("metadata count");
  // A tensor info takes at least 32 bytes (empty name, one dimension), a key/value pair 13.
  r.check_count(tensor_count, 32, "the tensor table");
  r.check_count(kv_count, 13, "the metadata");
  metadata_ = read_metadata(r, kv_count);
  alignment_ = read_alignment(r, find("general.alignment"));

  tensors_.reserve(reserve_for(tensor_count));
  std::set<std::string, std::less<>> names;
  for (uint64_t i = 0; i < tensor_count; i++) {
    r.set_where("tensor info " + std::to_string(i));
    tensors_.push_back(read_tensor_info(r, alignment_, names));
  }

  // The data section starts at the first aligned offset after the tensor table. A file without
  // tensors may end before it.
  const uint64_t data_start = round_up(r.offset(), alignment_);
  const uint64_t data_size = data_start < file_.size() ? file_.size() - data_start : 0;
  for (GgufTensorInfo& t : tensors_) {
    if (t.offset > data_size || t.bytes > data_size - t.offset) {
      r.fail("tensor '" + t.name + "' (" + std::to_string(t.bytes) + " bytes at data offset " +
             std::to_string(t.offset) + ") extends past the end of the file (the data section has " +
             std::to_string(data_size) + " bytes)");
    }
    if (ggml_type_supported(t.type)) t.data = file_.bytes().data() + data_start + t.offset;
  }
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (const auto& [k, v] : metadata_) {
    if (k == key) return &v;
  }
  return nullptr;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  for (const GgufTensorInfo& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

namespace {
[[noreturn]] void wrong_type(const GgufFile& f, std::string_view key, const GgufValue& v, const char* want) {
  throw InputError(f.path() + ": metadata key '" + std::string(key) + "' is " +
                   value_type_name(v.type) + ", not " + want);
}
}  // namespace

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::string) wrong_type(*this, key, *v, "a string");
  return std::get<std::string>(v->value);
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* i = std::get_if<int64_t>(&v->value)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&v->value)) {
    if (*u > uint64_t(std::numeric_limits<int64_t>::max())) {
      throw InputError(path() + ": metadata key '" + std::string(key) + "' = " +
                       std::to_string(*u) + " is out of range");
    }
    return static_cast<int64_t>(*u);
  }
  wrong_type(*this, key, *v, "an integer");
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* d = std::get_if<double>(&v->value)) return *d;
  if (const auto* i = std::get_if<int64_t>(&v->value)) return static_cast<double>(*i);
  if (const auto* u = std::get_if<uint64_t>(&v->value)) return static_cast<double>(*u);
  wrong_type(*this, key, *v, "a number");
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::boolean) wrong_type(*this, key, *v, "a bool");
  return std::get<bool>(v->value);
}

const GgufArray* GgufFile::get_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  if (v->type != GgufValueType::array) wrong_type(*this, key, *v, "an array");
  return std::get<std::shared_ptr<GgufArray>>(v->value).get();
}

namespace {

// A string quoted for a terminal: control bytes escaped, cut after `limit` bytes.
std::string quote(const std::string& s, std::size_t limit) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < limit; i++) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += s.size() > limit ? "\"..." : "\"";
  return out;
}

// Shortest text that reads back as the same number (f32 values as floats: 1e-05, not 9.99e-06).
std::string number(double d, GgufValueType type) {
  char buf[64];
  const auto r = type == GgufValueType::f32 ? std::to_chars(buf, buf + sizeof buf, static_cast<float>(d))
                                            : std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

}  // namespace

std::string describe(const GgufValue& value) {
  constexpr std::size_t kShownItems = 4;
  constexpr std::size_t kStringLimit = 80;
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, double>) {
          return number(x, value.type);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return quote(x, kStringLimit);
        } else if constexpr (std::is_same_v<T, std::shared_ptr<GgufArray>>) {
          if (!x) return "[]";
          const bool strings = x->element_type == GgufValueType::string;
          const std::size_t n = strings ? x->strings.size() : x->items.size();
          std::string out = std::string("[") + value_type_name(x->element_type) + " x " +
                            std::to_string(n) + (n ? ": " : "");
          for (std::size_t i = 0; i < n && i < kShownItems; i++) {
            if (i) out += ", ";
            out += strings ? quote(x->strings[i], 24) : describe(x->items[i]);
          }
          return out + (n > kShownItems ? ", ...]" : "]");
        } else {
          return std::to_string(x);
        }
      },
      value.value);
}

}  // namespace troupe
