// Writer for GGUF v3 files in exactly the layout llama.cpp reads: header, metadata in insertion
// order, tensor infos whose offsets are the running sum of the aligned tensor sizes, zero padding
// up to the aligned data section, then each tensor followed by zero padding to the alignment
// (llama.cpp reads the padded size of the last tensor too).
//
// The file appears under its name only once complete: it is written to `path + ".tmp"`, synced,
// then renamed; on any error the temporary file is removed.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"

namespace troupe {
namespace {

constexpr uint32_t kVersion = 3;
constexpr uint32_t kMaxDims = 4;
constexpr std::size_t kMaxTensorName = 63;  // ggml's GGML_MAX_NAME (64) less the NUL
constexpr int kMaxArrayDepth = 2;

uint64_t round_up(uint64_t x, uint64_t alignment) { return x + (alignment - x % alignment) % alignment; }

// Serialises metadata and tensor infos into memory (vocabularies make this megabytes at most).
class Encoder {
 public:
  std::string out;

  template <class T>
  void scalar(T v) {
    char b[sizeof v];
    std::memcpy(b, &v, sizeof v);
    out.append(b, sizeof v);
  }
  void string(const std::string& s) {
    scalar<uint64_t>(s.size());
    out += s;
  }

  // The payload of a value of type `type` (the type tag itself is written by the caller, once
  // per key or once per array). `key` names the entry in errors.
  void value(const GgufValue& v, GgufValueType type, int depth, const std::string& key) {
    switch (type) {
      case GgufValueType::u8: scalar(integer<uint8_t>(v, key)); break;
      case GgufValueType::i8: scalar(integer<int8_t>(v, key)); break;
      case GgufValueType::u16: scalar(integer<uint16_t>(v, key)); break;
      case GgufValueType::i16: scalar(integer<int16_t>(v, key)); break;
      case GgufValueType::u32: scalar(integer<uint32_t>(v, key)); break;
      case GgufValueType::i32: scalar(integer<int32_t>(v, key)); break;
      case GgufValueType::u64: scalar(integer<uint64_t>(v, key)); break;
      case GgufValueType::i64: scalar(integer<int64_t>(v, key)); break;
      case GgufValueType::f32: scalar(static_cast<float>(floating(v, key))); break;
      case GgufValueType::f64: scalar(floating(v, key)); break;
      case GgufValueType::boolean: scalar<uint8_t>(held<bool>(v, key) ? 1 : 0); break;
      case GgufValueType::string: string(held<std::string>(v, key)); break;
      case GgufValueType::array: array(v, depth, key); break;
      default:
        throw InputError("metadata key '" + key + "': unknown value type " +
                         std::to_string(static_cast<uint32_t>(type)));
    }
  }

 private:
  void array(const GgufValue& v, int depth, const std::string& key) {
    const auto& a = held<std::shared_ptr<GgufArray>>(v, key);
    if (!a) throw InputError("metadata key '" + key + "': null array");
    if (depth + 1 >= kMaxArrayDepth && a->element_type == GgufValueType::array) {
      throw InputError("metadata key '" + key + "': arrays nested more than " +
                       std::to_string(kMaxArrayDepth) + " deep");
    }
    const bool strings = a->element_type == GgufValueType::string;
    if (strings ? !a->items.empty() : !a->strings.empty()) {
      throw InputError("metadata key '" + key + "': array items held in the wrong list for its type");
    }
    scalar(static_cast<uint32_t>(a->element_type));
    scalar<uint64_t>(strings ? a->strings.size() : a->items.size());
    if (strings) {
      for (const std::string& s : a->strings) string(s);
      return;
    }
    for (const GgufValue& item : a->items) {
      if (item.type != a->element_type) {
        throw InputError("metadata key '" + key + "': array of type " +
                         std::to_string(static_cast<uint32_t>(a->element_type)) +
                         " holds an item of type " + std::to_string(static_cast<uint32_t>(item.type)));
      }
      value(item, a->element_type, depth + 1, key);
    }
  }

  template <class T>
  static const T& held(const GgufValue& v, const std::string& key) {
    if (const T* p = std::get_if<T>(&v.value)) return *p;
    throw InputError("metadata key '" + key + "': the value held does not match its type " +
                     std::to_string(static_cast<uint32_t>(v.type)));
  }
  template <class T>
  static T integer(const GgufValue& v, const std::string& key) {
    bool fits = false;
    T out{};
    if (const auto* u = std::get_if<uint64_t>(&v.value)) {
      fits = std::in_range<T>(*u);
      out = static_cast<T>(*u);
    } else if (const auto* i = std::get_if<int64_t>(&v.value)) {
      fits = std::in_range<T>(*i);
      out = static_cast<T>(*i);
    } else {
      throw InputError("metadata key '" + key + "': an integer type holds a non-integer value");
    }
    if (!fits) throw InputError("metadata key '" + key + "': value out of range for its type");
    return out;
  }
  static double floating(const GgufValue& v, const std::string& key) {
    if (const auto* d = std::get_if<double>(&v.value)) return *d;
    if (const auto* u = std::get_if<uint64_t>(&v.value)) return static_cast<double>(*u);
    if (const auto* i = std::get_if<int64_t>(&v.value)) return static_cast<double>(*i);
    throw InputError("metadata key '" + key + "': a float type holds a non-number");
  }
};

uint64_t tensor_bytes(const std::vector<uint64_t>& dims, GgmlType type) {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;  // add_tensor checked that this does not overflow
  return ggml_type_bytes(type, n);
}

// Owns the temporary file until commit(); removes it if anything fails before.
class TempFile {
 public:
  explicit TempFile(std::string path) : final_(std::move(path)), tmp_(final_ + ".tmp") {
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) fail("cannot create");
  }
  ~TempFile() {
    if (f_) std::fclose(f_);
    if (!committed_) std::remove(tmp_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const void* p, std::size_t n) {
    // In pieces: one huge fwrite of a quarter-gigabyte tensor measured 3x slower here.
    constexpr std::size_t kPiece = 8 << 20;
    const char* c = static_cast<const char*>(p);
    for (std::size_t done = 0; done < n; done += kPiece) {
      const std::size_t len = std::min(kPiece, n - done);
      if (std::fwrite(c + done, 1, len, f_) != len) fail("cannot write");
    }
  }
  void zeros(std::size_t n) {
    static const char pad[256] = {};
    for (; n > 0; n -= std::min(n, sizeof pad)) write(pad, std::min(n, sizeof pad));
  }
  void commit() {
    if (std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0) fail("cannot write");
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) fail("cannot write");
    if (std::rename(tmp_.c_str(), final_.c_str()) != 0) {
      throw RuntimeFailure(final_ + ": cannot rename " + tmp_ + " into place: " + std::strerror(errno));
    }
    committed_ = true;
  }

 private:
  [[noreturn]] void fail(const char* what) const {
    throw RuntimeFailure(tmp_ + ": " + what + ": " + std::strerror(errno));
  }

  std::string final_;
  std::string tmp_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

}  // namespace

void GgufWriter::set(std::string key, GgufValue value) {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::set_string(std::string key, std::string v) {
  set(std::move(key), {GgufValueType::string, std::move(v)});
}
void GgufWriter::set_u32(std::string key, uint32_t v) { set(std::move(key), {GgufValueType::u32, uint64_t{v}}); }
void GgufWriter::set_i32(std::string key, int32_t v) { set(std::move(key), {GgufValueType::i32, int64_t{v}}); }
void GgufWriter::set_f32(std::string key, float v) { set(std::move(key), {GgufValueType::f32, double{v}}); }
void GgufWriter::set_bool(std::string key, bool v) { set(std::move(key), {GgufValueType::boolean, v}); }

void GgufWriter::set_string_array(std::string key, std::vector<std::string> v) {
  auto a = std::make_shared<GgufArray>();
  a->element_type = GgufValueType::string;
  a->strings = std::move(v);
  set(std::move(key), {GgufValueType::array, std::move(a)});
}

void GgufWriter::set_f32_array(std::string key, const std::vector<float>& v) {
  auto a = std::make_shared<GgufArray>();
  a->element_type = GgufValueType::f32;
  a->items.assign(v.size(), GgufValue{GgufValueType::f32, 0.0});
  for (std::size_t i = 0; i < v.size(); i++) a->items[i].value = double{v[i]};
  set(std::move(key), {GgufValueType::array, std::move(a)});
}

void GgufWriter::set_i32_array(std::string key, const std::vector<int32_t>& v) {
  auto a = std::make_shared<GgufArray>();
  a->element_type = GgufValueType::i32;
  a->items.assign(v.size(), GgufValue{GgufValueType::i32, int64_t{0}});
  for (std::size_t i = 0; i < v.size(); i++) a->items[i].value = int64_t{v[i]};
  set(std::move(key), {GgufValueType::array, std::move(a)});
}

void GgufWriter::add_tensor(std::string name, std::vector<uint64_t> dims, GgmlType type, Fill fill) {
  const std::string tensor = "tensor '" + name + "'";
  if (name.size() > kMaxTensorName) {
    throw InputError(tensor + ": name longer than ggml's " + std::to_string(kMaxTensorName) + " bytes");
  }
  for (const Tensor& t : tensors_) {
    if (t.name == name) throw InputError("duplicate " + tensor);
  }
  if (dims.empty() || dims.size() > kMaxDims) {
    throw InputError(tensor + " has " + std::to_string(dims.size()) + " dimensions (1 to 4 allowed)");
  }
  if (!ggml_type_supported(static_cast<uint32_t>(type))) {
    throw InputError(tensor + ": type " + ggml_type_name(static_cast<uint32_t>(type)) + " cannot be written");
  }
  uint64_t n = 1;
  for (uint64_t d : dims) {
    if (d == 0 || d > uint64_t(INT64_MAX) / n) throw InputError(tensor + ": bad shape");
    n *= d;
  }
  if (dims[0] % ggml_block_size(type) != 0) {
    throw InputError(tensor + " of type " + ggml_type_name(static_cast<uint32_t>(type)) +
                     " has rows of " + std::to_string(dims[0]) + " values, not a multiple of " +
                     std::to_string(ggml_block_size(type)));
  }
  ggml_type_bytes(type, n);  // throws if the byte count overflows
  tensors_.push_back({std::move(name), std::move(dims), type, std::move(fill)});
}

void GgufWriter::write(const std::string& path,
                       const std::function<void(uint64_t, uint64_t)>& progress) const {
  uint64_t alignment = 32;
  for (const auto& [k, v] : metadata_) {
    if (k.empty()) throw InputError(path + ": a metadata key is empty");
    if (k == "general.alignment") {
      const auto* a = std::get_if<uint64_t>(&v.value);
      if (v.type != GgufValueType::u32 || !a || *a == 0 || (*a & (*a - 1)) != 0 || *a > UINT32_MAX) {
        throw InputError(path + ": general.alignment must be a u32 power of two");
      }
      alignment = *a;
    }
  }

  Encoder e;
  e.out.append("GGUF", 4);
  e.scalar(kVersion);
  e.scalar<uint64_t>(tensors_.size());
  e.scalar<uint64_t>(metadata_.size());
  for (const auto& [k, v] : metadata_) {
    e.string(k);
    e.scalar(static_cast<uint32_t>(v.type));
    try {
      e.value(v, v.type, 0, k);
    } catch (const InputError& err) {
      throw InputError(path + ": " + err.what());
    }
  }
  uint64_t data_bytes = 0;
  for (const Tensor& t : tensors_) {
    e.string(t.name);
    e.scalar<uint32_t>(t.dims.size());
    for (uint64_t d : t.dims) e.scalar(d);
    e.scalar(static_cast<uint32_t>(t.type));
    e.scalar(data_bytes);
    data_bytes += round_up(tensor_bytes(t.dims, t.type), alignment);
  }

  TempFile out(path);
  out.write(e.out.data(), e.out.size());
  out.zeros(round_up(e.out.size(), alignment) - e.out.size());
  uint64_t done = 0;
  std::vector<std::byte> buf;
  for (const Tensor& t : tensors_) {
    const uint64_t bytes = tensor_bytes(t.dims, t.type);
    buf.assign(bytes, std::byte{0});
    if (t.fill) t.fill(std::span<std::byte>(buf));
    out.write(buf.data(), buf.size());
    out.zeros(round_up(bytes, alignment) - bytes);
    done += round_up(bytes, alignment);
    if (progress) progress(done, data_bytes);
  }
  out.commit();
}

}  // namespace troupe
