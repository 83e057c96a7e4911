// Interleaved Q8_0 / Q4_0 blocks (kernels.hpp): the layout's reference loops (the copy, reading a
// row back, the x sums), the scalar products over it, which give the reference's floats
// (matvec_q8_0_ref / matvec_q4_0_ref) by reading each row's blocks back out of the groups, and
// the entry points by weight type.
#include <cstring>

#include "matvec_impl.hpp"
#include "troupe/kernels/kernels.hpp"

namespace troupe::kernels {

namespace {

std::size_t groups(int rows) { return (static_cast<std::size_t>(rows) + kInterleave - 1) / kInterleave; }

// Where block b of group g starts: its quants, and its 16 scales.
struct GroupBlock {
  uint8_t* quants;
  uint16_t* scales;
};
template <std::size_t Quants>
GroupBlock group_block(uint8_t* w, std::size_t g, int b, int nb) {
  uint8_t* group = w + g * nb * (Quants + kScalesX16);
  return {group + b * Quants, reinterpret_cast<uint16_t*>(group + nb * Quants + b * kScalesX16)};
}

// Piece k (4 bytes) of row r's block: at quants + 64 k + 4 r.
constexpr std::size_t piece(int k, int r) { return 64 * std::size_t(k) + 4 * std::size_t(r); }

// While a group is copied, the same block of the next group's 16 rows is fetched into L2 (16
// short streams the hardware prefetcher does not follow; without it a tile copied from DRAM
// waits on every line). An address past the matrix is never read: it is formed as an integer.
template <typename Block>
void prefetch_next_group(const Block* src, std::size_t g, int b, int nb) {
  const auto base = reinterpret_cast<uintptr_t>(src);
  for (int r = 0; r < kInterleave; r++) {
    const std::size_t row = (g + 1) * kInterleave + r;
    __builtin_prefetch(reinterpret_cast<const void*>(base + (row * nb + b) * sizeof(Block)), 0, 2);
  }
}

}  // namespace

// Groups [g0, g1) of a matrix of `rows` rows: the reference loops (rows past the matrix padded
// with zeros).
void detail::copy_groups_q8_0(uint8_t* dst, const void* from, int rows, std::size_t g0,
                              std::size_t g1, int nb) {
  const auto* src = static_cast<const BlockQ8_0*>(from);
  for (std::size_t g = g0; g < g1; g++) {
    for (int b = 0; b < nb; b++) {
      prefetch_next_group(src, g, b, nb);  // 34 bytes a block: every block
      const GroupBlock gb = group_block<kQuantsQ8_0x16>(dst, g, b, nb);
      for (int r = 0; r < kInterleave; r++) {
        const std::size_t row = g * kInterleave + r;
        const bool real = row < std::size_t(rows);
        gb.scales[r] = real ? src[row * nb + b].d : 0;
        for (int k = 0; k < kBlock / 4; k++) {
          for (int i = 0; i < 4; i++) {
            const int8_t q = real ? src[row * nb + b].qs[4 * k + i] : 0;
            gb.quants[piece(k, r) + i] = static_cast<uint8_t>(q) ^ 0x80;  // q + 128
          }
        }
      }
    }
  }
}

void detail::copy_groups_q4_0(uint8_t* dst, const void* from, int rows, std::size_t g0,
                              std::size_t g1, int nb) {
  const auto* src = static_cast<const BlockQ4_0*>(from);
  for (std::size_t g = g0; g < g1; g++) {
    for (int b = 0; b < nb; b++) {
      if (b % 2 == 0) prefetch_next_group(src, g, b, nb);  // 18 bytes a block: every other
      const GroupBlock gb = group_block<kQuantsQ4_0x16>(dst, g, b, nb);
      for (int r = 0; r < kInterleave; r++) {
        const std::size_t row = g * kInterleave + r;
        const bool real = row < std::size_t(rows);
        gb.scales[r] = real ? src[row * nb + b].d : 0;
        for (int k = 0; k < kBlock / 8; k++) {
          if (real) {
            std::memcpy(gb.quants + piece(k, r), src[row * nb + b].qs + 4 * k, 4);
          } else {
            std::memset(gb.quants + piece(k, r), 0x88, 4);  // zeros
          }
        }
      }
    }
  }
}

void detail::interleave_groups_q8_0_ref(uint8_t* dst, const void* src, int groups, int nb) {
  copy_groups_q8_0(dst, src, groups * kInterleave, 0, std::size_t(groups), nb);
}
void detail::interleave_groups_q4_0_ref(uint8_t* dst, const void* src, int groups, int nb) {
  copy_groups_q4_0(dst, src, groups * kInterleave, 0, std::size_t(groups), nb);
}

void detail::sum_x_blocks_ref(XBlockSum* out, const BlockQ8_0* x, int blocks, int offset) {
  for (int b = 0; b < blocks; b++) {
    int32_t sum = 0;
    for (int j = 0; j < kBlock; j++) sum += x[b].qs[j];
    out[b] = {-offset * sum, fp16_to_fp32(x[b].d)};
  }
}

void sum_x_blocks(WeightType type, XBlockSum* out, const void* x, int blocks) {
  isa_kernels().sum_x_blocks(out, static_cast<const BlockQ8_0*>(x), blocks,
                             type_traits(type).interleaved->offset);
}

std::size_t interleaved_bytes(WeightType type, int rows, int n) {
  const TypeTraits& t = type_traits(type);
  return groups(rows) * std::size_t(n / t.block) * (t.interleaved->quants_bytes + kScalesX16);
}

// Whole groups through the ISA's copy (the reference's bytes), a padded last group by the loops.
void interleave(WeightType type, uint8_t* dst, const void* src, int rows, int n) {
  const TypeTraits& t = type_traits(type);
  const int nb = n / t.block, whole = rows / kInterleave;
  isa_kernels()[type].interleave_groups(dst, src, whole, nb);
  t.interleaved->copy_groups(dst, src, rows, std::size_t(whole), groups(rows), nb);
}

void deinterleave_row(WeightType type, void* row, const uint8_t* w, int r, int n) {
  type_traits(type).interleaved->deinterleave_row(row, w, r, n);
}

void detail::deinterleave_row_q8_0(void* to, const uint8_t* w, int r, int n) {
  auto* row = static_cast<BlockQ8_0*>(to);
  const int nb = n / kBlock;
  for (int b = 0; b < nb; b++) {
    const GroupBlock gb =
        group_block<kQuantsQ8_0x16>(const_cast<uint8_t*>(w), r / kInterleave, b, nb);
    row[b].d = gb.scales[r % kInterleave];
    for (int k = 0; k < kBlock / 4; k++) {
      for (int i = 0; i < 4; i++) {
        row[b].qs[4 * k + i] = static_cast<int8_t>(gb.quants[piece(k, r % kInterleave) + i] ^ 0x80);
      }
    }
  }
}

void detail::deinterleave_row_q4_0(void* to, const uint8_t* w, int r, int n) {
  auto* row = static_cast<BlockQ4_0*>(to);
  const int nb = n / kBlock;
  for (int b = 0; b < nb; b++) {
    const GroupBlock gb =
        group_block<kQuantsQ4_0x16>(const_cast<uint8_t*>(w), r / kInterleave, b, nb);
    row[b].d = gb.scales[r % kInterleave];
    for (int k = 0; k < kBlock / 8; k++) {
      std::memcpy(row[b].qs + 4 * k, gb.quants + piece(k, r % kInterleave), 4);
    }
  }
}

namespace detail {

namespace {

// Row by row, block by block, as matvec_q8_0_ref / matvec_q4_0_ref: their floats.
void matvec_q8_0x16(float* y, const uint8_t* w, const BlockQ8_0* x, int n, int r0, int r1) {
  const int nb = n / kBlock;
  for (int r = r0; r < r1; r++) {
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
      const GroupBlock gb =
          group_block<kQuantsQ8_0x16>(const_cast<uint8_t*>(w), r / kInterleave, b, nb);
      int32_t isum = 0;
      for (int j = 0; j < kBlock; j++) {
        const int32_t q = static_cast<int8_t>(gb.quants[piece(j / 4, r % kInterleave) + j % 4] ^ 0x80);
        isum += q * static_cast<int32_t>(x[b].qs[j]);
      }
      sum += static_cast<float>(isum) *
             (fp16_to_fp32(gb.scales[r % kInterleave]) * fp16_to_fp32(x[b].d));
    }
    y[r] = sum;
  }
}

void matvec_q4_0x16(float* y, const uint8_t* w, const BlockQ8_0* x, int n, int r0, int r1) {
  const int nb = n / kBlock;
  for (int r = r0; r < r1; r++) {
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
      const GroupBlock gb =
          group_block<kQuantsQ4_0x16>(const_cast<uint8_t*>(w), r / kInterleave, b, nb);
      int32_t isum = 0;
      for (int j = 0; j < kBlock / 2; j++) {
        const uint8_t q = gb.quants[piece(j / 4, r % kInterleave) + j % 4];
        isum += ((q & 0x0F) - 8) * x[b].qs[j] + ((q >> 4) - 8) * x[b].qs[j + kBlock / 2];
      }
      sum += static_cast<float>(isum) *
             (fp16_to_fp32(gb.scales[r % kInterleave]) * fp16_to_fp32(x[b].d));
    }
    y[r] = sum;
  }
}

}  // namespace

// Token by token (it needs no x sums).
void matmul_q8_0x16_ref(float* y, int ldy, const uint8_t* w, const Operand& x, const XBlockSum*,
                        int ldx, int n, int count, int r0, int r1) {
  const auto* xb = static_cast<const BlockQ8_0*>(x.data);
  for (int t = 0; t < count; t++) {
    matvec_q8_0x16(y + std::ptrdiff_t(t) * ldy, w, xb + std::ptrdiff_t(t) * ldx, n, r0, r1);
  }
}

void matmul_q4_0x16_ref(float* y, int ldy, const uint8_t* w, const Operand& x, const XBlockSum*,
                        int ldx, int n, int count, int r0, int r1) {
  const auto* xb = static_cast<const BlockQ8_0*>(x.data);
  for (int t = 0; t < count; t++) {
    matvec_q4_0x16(y + std::ptrdiff_t(t) * ldy, w, xb + std::ptrdiff_t(t) * ldx, n, r0, r1);
  }
}

}  // namespace detail

}  // namespace troupe::kernels
