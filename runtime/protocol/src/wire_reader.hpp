// Reading one msgpack array of untrusted fields, in order, each checked for its kind and range.
// Every failure throws InputError naming the array and what was wrong.
#pragma once

#include <cstdint>
#include <msgpack.hpp>
#include <span>
#include <string>
#include <string_view>

#include "troupe/model/error.hpp"

namespace troupe::wire::schema {

class Reader {
 public:
  Reader(const msgpack::object& o, const char* what) : what_(what) {
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
      fail(std::string(name) + " " + std::to_string(v) + " is outside " + std::to_string(lo) + ".." +
           std::to_string(hi));
    }
    return static_cast<int>(v);
  }
  bool boolean() {
    const auto& o = next();
    if (o.type != msgpack::type::BOOLEAN) fail("expected a boolean");
    return o.via.boolean;
  }
  // A float, or an integer (msgpack-c packs integral floats as integers).
  double real() {
    const auto& o = next();
    if (o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64) return o.via.f64;
    if (o.type == msgpack::type::POSITIVE_INTEGER) return static_cast<double>(o.via.u64);
    if (o.type == msgpack::type::NEGATIVE_INTEGER) return static_cast<double>(o.via.i64);
    fail("expected a number");
  }
  // Points into the frame: the caller copies what it keeps.
  std::string_view str(std::size_t limit, const char* name) {
    const auto& o = next();
    if (o.type != msgpack::type::STR) fail(std::string(name) + ": expected a string");
    if (o.via.str.size > limit) fail(std::string(name) + " is over " + std::to_string(limit) + " bytes");
    return {o.via.str.ptr, o.via.str.size};
  }
  // Points into the frame: the caller copies what it keeps.
  std::span<const uint8_t> bin(const char* name) {
    const auto& o = next();
    if (o.type != msgpack::type::BIN) fail(std::string(name) + ": expected binary data");
    return {reinterpret_cast<const uint8_t*>(o.via.bin.ptr), o.via.bin.size};
  }
  Reader array(const char* name) { return Reader(next(), name); }

 private:
  const char* what_;
  msgpack::object_array a_{};
  uint32_t i_ = 0;
};

}  // namespace troupe::wire::schema
