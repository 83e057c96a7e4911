// The vocabulary of the field lists in wire_schema.hpp, and the three things derived from a list:
// the encoder (write_record), the decoder (read_record) and the documentation (wire_doc.cpp).
//
// A *kind* says how one value travels: how it is packed (put), how it is read back and checked
// (get), and how docs/protocol.md describes it (type, checks, show). A *record* is a list of
// items, in wire order, packed as one msgpack array:
//   field(name, &Struct::member, kind, meaning)  one element of the array
//   appended()           the fields after it were appended: older frames end here, and the
//                        struct's defaults stand for what they lack
//   flattened(&Struct::member)  the member's own record's fields, in place (not nested)
//   rule<T>(text, predicate)    a check of the fields before it, on decoding
// Encoding checks what a sender controls and a receiver must not allocate (string sizes, array
// counts); decoding checks everything.
#pragma once

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "troupe/protocol/wire.hpp"
#include "wire_reader.hpp"

namespace troupe::wire::schema {

using Packer = msgpack::packer<msgpack::sbuffer>;

// The field being encoded, for the message of a limit's InputError.
struct Where {
  const char* record = "";
  const char* field = "";
};
[[noreturn]] void over_limit(Where at, std::size_t size, std::size_t limit, const char* unit);

// For the documentation: 1048576 as "2^20", 1 << 20 bytes as "1 MiB".
std::string number(int64_t n);
std::string number(double x);
std::string bytes(std::size_t n);
std::string anchor(const char* heading);

// --- the items of a record ----------------------------------------------------------------------

template <class T>
struct Tag {};
// The list of T: an overload spec(Tag<T>) in wire_schema.hpp, found by argument-dependent lookup.
template <class T>
inline constexpr auto spec_of = spec(Tag<T>{});

template <class Owner, class Value, class Kind>
struct Field {
  const char* name;
  Value Owner::*member;
  Kind kind;
  const char* meaning;
};

template <class Kind, class Value>
concept KindOf = requires(const Kind& k, Packer& p, Reader& r, Value& v) {
  k.put(p, std::as_const(v), Where{});
  k.get(r, v, "");
  { k.type() } -> std::convertible_to<std::string>;
  { k.checks() } -> std::convertible_to<std::string>;
  { k.show(std::as_const(v)) } -> std::convertible_to<std::string>;
};

template <class Owner, class Value, class Kind>
  requires KindOf<Kind, Value>
constexpr Field<Owner, Value, Kind> field(const char* name, Value Owner::*member, Kind kind,
                                          const char* meaning) {
  return {name, member, kind, meaning};
}

struct Appended {};
constexpr Appended appended() { return {}; }

template <class Owner, class Inner>
struct Flattened {
  Inner Owner::*member;
};
template <class Owner, class Inner>
constexpr Flattened<Owner, Inner> flattened(Inner Owner::*member) {
  return {member};
}

template <class T, class Predicate>
struct Rule {
  const char* text;  // what holds, e.g. "end > begin"
  Predicate holds;
};
template <class T, class Predicate>
constexpr Rule<T, Predicate> rule(const char* text, Predicate holds) {
  return {text, holds};
}

// A record's list; a message is a record with a type and a route.
template <class T, class... Items>
struct Spec {
  const char* name;   // the heading in the docs; the Reader's name in errors
  const char* about;  // what it is, for the docs
  MessageType type{};
  const char* route = nullptr;  // messages only: from -> to
  std::tuple<Items...> items;
};
template <class T, class... Items>
constexpr Spec<T, Items...> record(const char* name, const char* about, Items... items) {
  return {name, about, MessageType{}, nullptr, {items...}};
}
template <class T, class... Items>
constexpr Spec<T, Items...> message(MessageType type, const char* name, const char* route,
                                    const char* about, Items... items) {
  return {name, about, type, route, {items...}};
}

// The number of array elements a list's items make.
template <class Item>
constexpr uint32_t width(const Item&) {
  return 0;
}
template <class O, class V, class K>
constexpr uint32_t width(const Field<O, V, K>&) {
  return 1;
}
template <class O, class Inner>
constexpr uint32_t width(const Flattened<O, Inner>&) {
  return std::apply([](const auto&... item) { return (width(item) + ... + 0u); }, spec_of<Inner>.items);
}
template <class T>
inline constexpr uint32_t field_count =
    std::apply([](const auto&... item) { return (width(item) + ... + 0u); }, spec_of<T>.items);

// --- encoding and decoding a record -------------------------------------------------------------

template <class T, class Items>
void write_items(Packer& p, const T& v, const char* record, const Items& items);

template <class T>
void write_record(Packer& p, const T& v) {
  p.pack_array(field_count<T>);
  write_items(p, v, spec_of<T>.name, spec_of<T>.items);
}

template <class T, class Item>
void write_item(Packer&, const T&, const char*, const Item&) {}
template <class T, class O, class V, class K>
void write_item(Packer& p, const T& v, const char* record, const Field<O, V, K>& f) {
  f.kind.put(p, v.*f.member, Where{record, f.name});
}
template <class T, class O, class Inner>
void write_item(Packer& p, const T& v, const char*, const Flattened<O, Inner>& f) {
  write_items(p, v.*f.member, spec_of<Inner>.name, spec_of<Inner>.items);
}

template <class T, class Items>
void write_items(Packer& p, const T& v, const char* record, const Items& items) {
  std::apply([&](const auto&... item) { (write_item(p, v, record, item), ...); }, items);
}

// Each returns whether reading goes on (false: an older frame ended before appended fields).
template <class T, class Items>
bool read_items(Reader& r, T& v, const Items& items);

template <class T>
void read_record(Reader& r, T& v) {
  read_items(r, v, spec_of<T>.items);
}

template <class T, class O, class V, class K>
bool read_item(Reader& r, T& v, const Field<O, V, K>& f) {
  f.kind.get(r, v.*f.member, f.name);
  return true;
}
template <class T>
bool read_item(Reader& r, T&, const Appended&) {
  return r.more();
}
template <class T, class O, class Inner>
bool read_item(Reader& r, T& v, const Flattened<O, Inner>& f) {
  return read_items(r, v.*f.member, spec_of<Inner>.items);
}
template <class T, class R, class P>
bool read_item(Reader& r, T& v, const Rule<R, P>& rule) {
  if (!rule.holds(static_cast<const R&>(v))) r.fail(std::string("expected ") + rule.text);
  return true;
}

template <class T, class Items>
bool read_items(Reader& r, T& v, const Items& items) {
  return std::apply([&](const auto&... item) { return (read_item(r, v, item) && ...); }, items);
}

// Shows a record's values, for the docs' defaults: [0, true, "", []].
template <class T>
std::string show_record(const T& v);

// --- the kinds ----------------------------------------------------------------------------------

// A string of at most `limit` bytes.
struct Str {
  std::size_t limit;
  void put(Packer& p, const std::string& s, Where at) const {
    if (s.size() > limit) over_limit(at, s.size(), limit, "bytes");
    p.pack_str(static_cast<uint32_t>(s.size()));
    p.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
  }
  void get(Reader& r, std::string& s, const char* name) const { s.assign(r.str(limit, name)); }
  std::string type() const { return "str"; }
  std::string checks() const { return "≤ " + bytes(limit); }
  std::string show(const std::string& s) const { return "\"" + s + "\""; }
};
constexpr Str text(std::size_t limit) { return {limit}; }

struct Unsigned {
  void put(Packer& p, uint64_t v, Where) const { p.pack_uint64(v); }
  void get(Reader& r, uint64_t& v, const char*) const { v = r.u64(); }
  std::string type() const { return "uint"; }
  std::string checks() const { return ""; }
  std::string show(uint64_t v) const { return std::to_string(v); }
};
constexpr Unsigned uint64() { return {}; }

// An int in [lo, hi] (packed as msgpack packs an int32).
struct Integer {
  int64_t lo, hi;
  void put(Packer& p, int v, Where) const { p.pack_int32(v); }
  void get(Reader& r, int& v, const char* name) const { v = r.integer(lo, hi, name); }
  std::string type() const { return "int"; }
  std::string checks() const { return number(lo) + " … " + number(hi); }
  std::string show(int v) const { return std::to_string(v); }
};
constexpr Integer integer(int64_t lo, int64_t hi) { return {lo, hi}; }

// An enum whose values are 0 .. names.size() - 1, packed as a uint8.
template <class E>
struct Enumeration {
  std::span<const char* const> names;
  void put(Packer& p, E v, Where) const { p.pack_uint8(static_cast<uint8_t>(v)); }
  void get(Reader& r, E& v, const char* name) const {
    v = static_cast<E>(r.integer(0, int64_t(names.size()) - 1, name));
  }
  std::string type() const { return "uint"; }
  std::string checks() const {
    std::string out;
    for (std::size_t i = 0; i < names.size(); i++) out += (i ? ", " : "") + std::to_string(i) + " " + names[i];
    return out;
  }
  std::string show(E v) const { return std::to_string(int(v)); }
};
template <class E, std::size_t N>
constexpr Enumeration<E> enumeration(const char* const (&names)[N]) {
  return {names};
}

struct Boolean {
  void put(Packer& p, bool v, Where) const { p.pack(v); }
  void get(Reader& r, bool& v, const char*) const { v = r.boolean(); }
  std::string type() const { return "bool"; }
  std::string checks() const { return ""; }
  std::string show(bool v) const { return v ? "true" : "false"; }
};
constexpr Boolean boolean() { return {}; }

// A float or double; when checked, finite and in [lo, hi] after conversion to F.
template <class F>
struct Real {
  bool checked;
  double lo, hi;
  void put(Packer& p, F v, Where) const {
    if constexpr (std::is_same_v<F, float>) {
      p.pack_float(v);
    } else {
      p.pack_double(v);
    }
  }
  void get(Reader& r, F& v, const char* name) const {
    v = static_cast<F>(r.real());
    if (checked && !(std::isfinite(v) && v >= lo && v <= hi)) r.fail(std::string("bad ") + name);
  }
  std::string type() const { return std::is_same_v<F, float> ? "float32" : "float64"; }
  std::string checks() const {
    if (!checked) return "";
    if (hi == std::numeric_limits<double>::infinity()) return "finite, ≥ " + number(int64_t(lo));
    return "finite, " + number(int64_t(lo)) + " … " + number(int64_t(hi));
  }
  std::string show(F v) const { return number(double(v)); }
};
template <class F>
constexpr Real<F> real() {
  return {false, 0, 0};
}
template <class F>
constexpr Real<F> real(double lo, double hi = std::numeric_limits<double>::infinity()) {
  return {true, lo, hi};
}

// A struct with a list of its own, as a nested array.
template <class R>
struct Record {
  void put(Packer& p, const R& v, Where) const { write_record(p, v); }
  void get(Reader& r, R& v, const char*) const {
    Reader fields(r.next(), spec_of<R>.name);
    read_record(fields, v);
  }
  std::string type() const {
    return std::string("[") + spec_of<R>.name + "](#" + anchor(spec_of<R>.name) + ")";
  }
  std::string checks() const { return ""; }
  std::string show(const R& v) const { return show_record(v); }
};
template <class R>
constexpr Record<R> nested() {
  return {};
}

// An optional value: nil when absent.
template <class Kind>
struct Maybe {
  Kind kind;
  template <class V>
  void put(Packer& p, const std::optional<V>& v, Where at) const {
    if (v) {
      kind.put(p, *v, at);
    } else {
      p.pack_nil();
    }
  }
  template <class V>
  void get(Reader& r, std::optional<V>& v, const char* name) const {
    if (r.next_is_nil()) {
      r.next();
      v.reset();
    } else {
      kind.get(r, v.emplace(), name);
    }
  }
  std::string type() const { return "nil or " + kind.type(); }
  std::string checks() const { return kind.checks(); }
  template <class V>
  std::string show(const std::optional<V>& v) const {
    return v ? kind.show(*v) : "nil";
  }
};
template <class Kind>
constexpr Maybe<Kind> maybe(Kind kind) {
  return {kind};
}

// At most `limit` values of one kind, as an array.
template <class Kind>
struct ArrayOf {
  Kind item;
  std::size_t limit;
  template <class V>
  void put(Packer& p, const std::vector<V>& v, Where at) const {
    if (v.size() > limit) over_limit(at, v.size(), limit, "items");
    p.pack_array(static_cast<uint32_t>(v.size()));
    for (const V& x : v) item.put(p, x, at);
  }
  template <class V>
  void get(Reader& r, std::vector<V>& v, const char* name) const {
    Reader items = r.array(name);
    if (items.size() > limit) r.fail(std::string("too many ") + name);
    v.resize(items.size());
    for (V& x : v) item.get(items, x, name);
  }
  std::string type() const { return "array of " + item.type(); }
  std::string checks() const {
    const std::string each = item.checks();
    return "≤ " + number(int64_t(limit)) + " items" + (each.empty() ? "" : "; each " + each);
  }
  template <class V>
  std::string show(const std::vector<V>& v) const {
    return v.empty() ? "[]" : "[…]";
  }
};
template <class Kind>
constexpr ArrayOf<Kind> array_of(Kind item, std::size_t limit) {
  return {item, limit};
}

// At most `limit` ints, as one bin of little-endian int32 (token ids).
struct Int32Bin {
  std::size_t limit;
  static_assert(sizeof(int) == 4);
  void put(Packer& p, const std::vector<int>& v, Where at) const {
    if (v.size() > limit) over_limit(at, v.size(), limit, "values");
    p.pack_bin(static_cast<uint32_t>(v.size() * 4));
    p.pack_bin_body(reinterpret_cast<const char*>(v.data()), static_cast<uint32_t>(v.size() * 4));
  }
  void get(Reader& r, std::vector<int>& v, const char* name) const {
    const auto b = r.bin(name);
    if (b.size() % 4 != 0 || b.size() / 4 > limit) {
      r.fail(std::string(name) + ": not a whole number of int32, or over " + std::to_string(limit));
    }
    v.resize(b.size() / 4);
    std::memcpy(v.data(), b.data(), b.size());
  }
  std::string type() const { return "bin"; }
  std::string checks() const { return "int32 little-endian, ≤ " + number(int64_t(limit)) + " of them"; }
  std::string show(const std::vector<int>& v) const { return v.empty() ? "empty" : "…"; }
};
constexpr Int32Bin int32_bin(std::size_t limit) { return {limit}; }

// At most `limit` raw bytes, as one bin (the activations' floats).
struct Bytes {
  std::size_t limit;
  void put(Packer& p, const std::vector<uint8_t>& v, Where at) const {
    if (v.size() > limit) over_limit(at, v.size(), limit, "bytes");
    p.pack_bin(static_cast<uint32_t>(v.size()));
    p.pack_bin_body(reinterpret_cast<const char*>(v.data()), static_cast<uint32_t>(v.size()));
  }
  void get(Reader& r, std::vector<uint8_t>& v, const char* name) const {
    const auto b = r.bin(name);
    if (b.size() > limit) r.fail(std::string(name) + " is over " + std::to_string(limit) + " bytes");
    v.assign(b.begin(), b.end());
  }
  std::string type() const { return "bin"; }
  std::string checks() const { return "≤ " + bytes(limit); }
  std::string show(const std::vector<uint8_t>& v) const { return v.empty() ? "empty" : "…"; }
};
constexpr Bytes raw_bytes(std::size_t limit) { return {limit}; }

// --- showing a record's values ------------------------------------------------------------------

template <class T, class Items>
void show_items(std::string& out, const T& v, const Items& items);

template <class T, class Item>
void show_item(std::string&, const T&, const Item&) {}
template <class T, class O, class V, class K>
void show_item(std::string& out, const T& v, const Field<O, V, K>& f) {
  if (out.size() > 1) out += ", ";
  out += f.kind.show(v.*f.member);
}
template <class T, class O, class Inner>
void show_item(std::string& out, const T& v, const Flattened<O, Inner>& f) {
  show_items(out, v.*f.member, spec_of<Inner>.items);
}

template <class T, class Items>
void show_items(std::string& out, const T& v, const Items& items) {
  std::apply([&](const auto&... item) { (show_item(out, v, item), ...); }, items);
}

template <class T>
std::string show_record(const T& v) {
  std::string out = "[";
  show_items(out, v, spec_of<T>.items);
  return out + "]";
}

}  // namespace troupe::wire::schema
