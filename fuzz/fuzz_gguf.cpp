// Any bytes given as a GGUF file: either InputError, or a file whose every tensor lies inside it
// (its first and last bytes are read under AddressSanitizer) and whose metadata every getter and
// describe() handle. A file that reads is also written back with GgufWriter and must read back
// the same.
#include <cmath>

#include "fuzz_file.hpp"
#include "troupe/model/error.hpp"
#include "troupe/model/gguf.hpp"

namespace {

bool same(const troupe::GgufValue& a, const troupe::GgufValue& b) {
  if (a.type != b.type || a.value.index() != b.value.index()) return false;
  if (const auto* x = std::get_if<double>(&a.value)) {
    const double y = std::get<double>(b.value);
    return *x == y || (std::isnan(*x) && std::isnan(y));
  }
  if (const auto* x = std::get_if<std::shared_ptr<troupe::GgufArray>>(&a.value)) {
    const auto& p = **x;
    const auto& q = *std::get<std::shared_ptr<troupe::GgufArray>>(b.value);
    if (p.element_type != q.element_type || p.strings != q.strings || p.items.size() != q.items.size()) {
      return false;
    }
    for (std::size_t i = 0; i < p.items.size(); i++) {
      if (!same(p.items[i], q.items[i])) return false;
    }
    return true;
  }
  return a.value == b.value;
}

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = write_fuzz_file(data, size);
  try {
    const troupe::GgufFile f = troupe::GgufFile::open(path);
    volatile uint8_t sink = 0;
    bool writable = true;
    for (const auto& t : f.tensors()) {
      troupe::ggml_type_name(t.type);
      if (t.data && t.bytes) sink = sink ^ uint8_t(t.data[0]) ^ uint8_t(t.data[t.bytes - 1]);
      writable = writable && t.data;
    }
    for (const auto& [key, value] : f.metadata()) {
      troupe::describe(value);
      try { f.get_int(key); } catch (const troupe::InputError&) {}
      try { f.get_float(key); } catch (const troupe::InputError&) {}
      try { f.get_string(key); } catch (const troupe::InputError&) {}
    }
    if (!writable) return 0;

    troupe::GgufWriter w;
    for (const auto& [key, value] : f.metadata()) w.set(key, value);
    for (const auto& t : f.tensors()) {
      w.add_tensor(t.name, t.dims, troupe::GgmlType(t.type), [&t](std::span<std::byte> out) {
        std::copy(t.data, t.data + t.bytes, out.begin());
      });
    }
    w.write(path + ".out");
    const troupe::GgufFile g = troupe::GgufFile::open(path + ".out");
    check(g.metadata().size() == f.metadata().size());
    for (std::size_t i = 0; i < f.metadata().size(); i++) {
      check(g.metadata()[i].first == f.metadata()[i].first);
      check(same(g.metadata()[i].second, f.metadata()[i].second));
    }
    check(g.tensors().size() == f.tensors().size());
    for (std::size_t i = 0; i < f.tensors().size(); i++) {
      const auto& a = f.tensors()[i];
      const auto& b = g.tensors()[i];
      check(a.name == b.name && a.dims == b.dims && a.type == b.type && a.bytes == b.bytes);
      check(std::equal(a.data, a.data + a.bytes, b.data));
    }
  } catch (const troupe::InputError&) {
  }
  return 0;
}
