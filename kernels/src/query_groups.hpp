// Attention's queries that share a key head run in groups of 8, 4, 2 or 1, so that a group's size
// is a compile-time constant and its chains stay in registers (simd_loops.hpp).
//
// In an unnamed namespace on purpose: each per-ISA file gets its own copy, compiled with its own
// flags (see matvec_impl.hpp on why nothing inline is shared between them).
#pragma once

#include <type_traits>

namespace troupe::kernels::detail {
namespace {

// Calls f(std::integral_constant<int, Q>{}, first) for consecutive groups covering
// [0, queries), each the largest of 8, 4, 2, 1 that fits in what is left.
template <class F>
void for_query_groups(int queries, F f) {
  for (int k = 0; k < queries;) {
    const int left = queries - k;
    if (left >= 8) {
      f(std::integral_constant<int, 8>{}, k);
      k += 8;
    } else if (left >= 4) {
      f(std::integral_constant<int, 4>{}, k);
      k += 4;
    } else if (left >= 2) {
      f(std::integral_constant<int, 2>{}, k);
      k += 2;
    } else {
      f(std::integral_constant<int, 1>{}, k);
      k += 1;
    }
  }
}

}  // namespace
}  // namespace troupe::kernels::detail
