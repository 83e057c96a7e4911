// What each weight type is, on every ISA (kernels.hpp's TypeTraits); its kernels per ISA are in
// dispatch.cpp. docs/weight-types.md says how a type is added.
#include <array>
#include <cstdlib>

#include "matvec_impl.hpp"
#include "type_table.hpp"
#include "troupe/kernels/kernels.hpp"

namespace troupe::kernels {

namespace {

constexpr InterleavedLayout kInterleavedQ8_0{
    .offset = 128,  // quants stored plus 128
    .quants_bytes = kQuantsQ8_0x16,
    .copy_groups = detail::copy_groups_q8_0,
    .deinterleave_row = detail::deinterleave_row_q8_0,
};
constexpr InterleavedLayout kInterleavedQ4_0{
    .offset = 8,  // the nibbles are the quants plus 8
    .quants_bytes = kQuantsQ4_0x16,
    .copy_groups = detail::copy_groups_q4_0,
    .deinterleave_row = detail::deinterleave_row_q4_0,
};

constexpr std::array<TypeTraits, kWeightTypes> kTraits = detail::every_type<TypeTraits>({
    {WeightType::f32,
     {.name = "f32",
      .block = 1,
      .block_bytes = sizeof(float),
      .quantized = false,
      .scales_apart = false,
      .input = WeightType::f32,
      .batch_widened = false,
      .interleaved = nullptr}},
    {WeightType::f16,
     {.name = "f16",
      .block = 1,
      .block_bytes = sizeof(uint16_t),
      .quantized = false,
      .scales_apart = false,
      .input = WeightType::f32,
      .batch_widened = true,
      .interleaved = nullptr}},
    {WeightType::q8_0,
     {.name = "q8_0",
      .block = kBlock,
      .block_bytes = sizeof(BlockQ8_0),
      .quantized = true,
      .scales_apart = false,
      .input = WeightType::q8_0,
      .batch_widened = false,
      .interleaved = &kInterleavedQ8_0}},
    {WeightType::q4_0,
     {.name = "q4_0",
      .block = kBlock,
      .block_bytes = sizeof(BlockQ4_0),
      .quantized = true,
      .scales_apart = false,
      .input = WeightType::q8_0,
      .batch_widened = false,
      .interleaved = &kInterleavedQ4_0}},
    {WeightType::q8_groups,
     {// The values are int8 (a block of one); the scales lie apart, one per group_size.
      .name = "q8 (llama2.c groups)",
      .block = 1,
      .block_bytes = sizeof(int8_t),
      .quantized = true,
      .scales_apart = true,
      .input = WeightType::q8_groups,
      .batch_widened = false,
      .interleaved = nullptr}},
});

}  // namespace

const TypeTraits& type_traits(WeightType type) {
  const auto i = static_cast<std::size_t>(type);
  if (i >= std::size_t(kWeightTypes)) std::abort();  // not a WeightType: a bug, not bad input
  return kTraits[i];
}

void quantize_row(WeightType type, const Destination& y, const float* x, int n) {
  isa_kernels()[type].quantize_row(y, x, n);
}

void dequantize_row(WeightType type, float* y, const Operand& x, int n) {
  isa_kernels()[type].dequantize_row(y, x, n);
}

Operand rows_from(WeightType type, const Operand& w, int r, int n) {
  const TypeTraits& t = type_traits(type);
  const auto* data = static_cast<const uint8_t*>(w.data) + t.bytes_of(std::size_t(r) * n);
  if (!t.scales_apart) return Operand(data);
  return Operand(data, w.scales + std::size_t(r) * n / w.group_size, w.group_size);
}

}  // namespace troupe::kernels
