// Tables indexed by WeightType, written as lists keyed by type (weight_types.cpp, dispatch.cpp):
// each entry names its type, so no entry depends on its position in the list.
//
// The checks throw, which in the constant expressions these are used in is a compile error.
#pragma once

#include <array>
#include <cstddef>

#include "troupe/kernels/kernels.hpp"

namespace troupe::kernels::detail {

template <class Entry>
struct Keyed {
  WeightType type;
  Entry entry;
};

// Every type's entry, from a list that names each type exactly once.
template <class Entry, std::size_t N>
constexpr std::array<Entry, kWeightTypes> every_type(const Keyed<Entry> (&list)[N]) {
  static_assert(N == kWeightTypes, "one entry for every WeightType");
  std::array<Entry, kWeightTypes> out{};
  std::array<bool, kWeightTypes> seen{};
  for (const Keyed<Entry>& k : list) {
    const auto i = static_cast<std::size_t>(k.type);
    if (i >= seen.size() || seen[i]) throw "a WeightType listed twice or out of range";
    seen[i] = true;
    out[i] = k.entry;
  }
  return out;
}

// `base` with the kernels a list gives for some types put over it: a field set in the list
// replaces the base's, one left null keeps it (an ISA that builds on another, dispatch.cpp).
template <std::size_t N>
constexpr std::array<TypeKernels, kWeightTypes> over(const std::array<TypeKernels, kWeightTypes>& base,
                                                     const Keyed<TypeKernels> (&list)[N]) {
  std::array<TypeKernels, kWeightTypes> out = base;
  std::array<bool, kWeightTypes> seen{};
  for (const Keyed<TypeKernels>& k : list) {
    const auto i = static_cast<std::size_t>(k.type);
    if (i >= seen.size() || seen[i]) throw "a WeightType listed twice or out of range";
    seen[i] = true;
    const TypeKernels& e = k.entry;
    TypeKernels& o = out[i];
    if (e.quantize_row) o.quantize_row = e.quantize_row;
    if (e.dequantize_row) o.dequantize_row = e.dequantize_row;
    if (e.matvec) o.matvec = e.matvec;
    if (e.matmul) o.matmul = e.matmul;
    if (e.interleave_groups) o.interleave_groups = e.interleave_groups;
    if (e.matmul_interleaved) o.matmul_interleaved = e.matmul_interleaved;
  }
  return out;
}

}  // namespace troupe::kernels::detail
