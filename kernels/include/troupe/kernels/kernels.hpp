// The math of a Llama forward pass, with no I/O and no threads.
//
// Each kernel has a plain scalar reference (kernels/src/reference.cpp) written to give exactly the
// floats llama2.c's run.c gives (same order of operations, no contraction into FMA), and, for the
// kernels that carry the memory traffic, SIMD paths (AVX2, AVX-512, NEON) chosen at run time by
// CPU features and checked against the reference in tests. Row-range arguments [r0, r1) let the
// caller split a matrix-vector product across threads without the kernels knowing about threads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace troupe::kernels {

// avxvnni: AVX2 with AVX-VNNI's 256-bit int8 dot products (Intel's client cores since Alder Lake,
// which have no AVX-512); its Q8_0 / Q4_0 kernels (matvec, interleaved batches) use them, the
// rest is AVX2's. neon_dotprod: NEON with ARMv8.2's sdot for the int8 products (Cortex-A55/A76
// and later; not the Raspberry Pi 4's A72).
enum class Isa { scalar, avx2, avx512, neon, avxvnni, neon_dotprod };
// Every ISA, the preferred first: detected_isa() takes the first available one, and tests that
// run every path go through this list.
inline constexpr Isa kIsasBestFirst[] = {Isa::avx512,       Isa::avxvnni, Isa::avx2,
                                         Isa::neon_dotprod, Isa::neon,    Isa::scalar};

std::string_view isa_name(Isa isa);

// The best instruction set this CPU supports among those compiled in. The environment variable
// TROUPE_ISA (an isa_name) lowers it, e.g. to compare paths; it never raises it.
Isa detected_isa();

// True when `isa` is compiled in and this CPU can run it.
bool isa_available(Isa isa);

// ggml's block formats (ggml-common.h), 32 values a block, bytes exactly as in GGUF files.
constexpr int kBlock = 32;
struct BlockQ8_0 {
  uint16_t d;  // fp16 scale
  int8_t qs[kBlock];  // value i = qs[i] * d
};
struct BlockQ4_0 {
  uint16_t d;  // fp16 scale
  uint8_t qs[kBlock / 2];  // value i < 16: ((qs[i] & 15) - 8) * d; i >= 16: ((qs[i-16] >> 4) - 8) * d
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18, "ggml block layouts");

// IEEE half precision, round to nearest even (as ggml's reference conversion).
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);

// ---- Weight types ----
//
// Everything done with a matrix goes through two tables, so that each piece of a type sits in
// one place (docs/weight-types.md: where, and how to add a type):
// - type_traits(type): what the type is, the same on every ISA (weight_types.cpp);
// - isa_kernels(isa)[type]: its kernels on one instruction set (dispatch.cpp, filled by name).
enum class WeightType : uint8_t {
  f32,
  f16,
  q8_0,       // ggml blocks (BlockQ8_0): 32 int8 + fp16 scale
  q4_0,       // ggml blocks (BlockQ4_0): 32 4-bit + fp16 scale
  q8_groups,  // llama2.c version 2 (runq.c): int8 values, one f32 scale per group_size, held apart
};
constexpr int kWeightTypes = 5;  // the types above, numbered from 0

// A matrix or an input as the kernels take it: the type's blocks from row 0 (a row of n values is
// n / block of them, TypeTraits), and for a type whose scales lie apart from its values
// (TypeTraits::scales_apart: llama2.c's groups) those scales, one per group_size values. The
// other types need the pointer alone, which converts to an Operand.
struct Operand {
  const void* data = nullptr;
  const float* scales = nullptr;
  int group_size = 0;
  constexpr Operand(const void* d, const float* s = nullptr, int gs = 0)  // NOLINT: converts
      : data(d), scales(s), group_size(gs) {}
};
// Where quantize_row writes: as Operand.
struct Destination {
  void* data = nullptr;
  float* scales = nullptr;
  int group_size = 0;
  constexpr Destination(void* d, float* s = nullptr, int gs = 0)  // NOLINT: converts
      : data(d), scales(s), group_size(gs) {}
};

// The interleaved blocks' x side (below): per token and block, the start of the kernels' exact
// integer sum, -offset * (sum of x's 32 quants), which takes off the offset that made the weight
// quants unsigned (+128 for Q8_0, +8 for Q4_0's nibbles), and x's scale as a float. It depends on
// x alone, so a product computes it once per token for all of its tiles.
struct XBlockSum {
  int32_t start;
  float d;
};

// A type's kernels, each taking the type's blocks as `data` (n % block == 0 throughout).
// Row conversions: n floats into the type (y's scales too where they lie apart), and back.
using QuantizeRow = void (*)(const Destination& y, const float* x, int n);
using DequantizeRow = void (*)(float* y, const Operand& x, int n);
// y[r] = (row r of w) . x for r in [r0, r1), rows of n values, x in the form the type's products
// take (TypeTraits::input). Every path computes a row's result from that row, x and n alone: not
// from r0/r1, the thread split or where the matrix sits in memory. So a model gives the same floats
// whatever the thread count, file layout or pipeline split, and a batch of tokens (the rows tiled,
// each tile run for every token) gives exactly the floats of one token at a time.
using Matvec = void (*)(float* y, const Operand& w, const Operand& x, int n, int r0, int r1);
// Per type: f32: y[r] = sum_j w[r*n + j] * x[j]. f16: f32 x, any n; the SIMD paths sum in
// another order than the in-order reference, each path's result its own f32 matvec's on the row
// widened (exact), so batches widen tiles for f32. Q8_0 / Q4_0 against x quantized to Q8_0:
// y[r] = sum over blocks b of (float)(int dot of block b) * (d_w[b] * d_x[b]), the float sum over
// blocks in order: every path gives the reference's floats bit for bit; weight quants may take
// any value, x's must be in [-127, 127] as Q8_0's quantize_row gives (AVX2 relies on it).
// llama2.c's groups (gs = group_size, n % gs == 0): y[r] = sum_g (sum_k wq[r*n + g*gs + k] *
// xq[g*gs + k]) * ws[(r*n + g*gs)/gs] * xs[g], the group's integer sum exact in int32 and the
// float sum over groups in order (runq.c).
// `count` tokens against rows [r0, r1): y[t * ldy + r] = row r . x_t, x_t = x + t * ldx blocks of
// the input's type (floats for f32), each output bit-identical to what the same ISA's matvec gives
// for row r and x_t; the kernels only reuse each weight load for several tokens. Rows of y outside
// [r0, r1) are not written.
using Matmul = void (*)(float* y, int ldy, const Operand& w, const Operand& x, int ldx, int n,
                        int count, int r0, int r1);
// Interleaved blocks (below): whole groups (16 real rows each, nb blocks a row) copied into the
// layout, the reference loops' bytes on every path; and the batched product over them, r0 %
// kInterleave == 0, bit for bit the floats of the type's matvec on the same blocks; xs: x's block
// sums (sum_x_blocks), with x's stride.
using InterleaveGroups = void (*)(uint8_t* dst, const void* src, int groups, int nb);
using MatmulInterleaved = void (*)(float* y, int ldy, const uint8_t* w, const Operand& x,
                                   const XBlockSum* xs, int ldx, int n, int count, int r0, int r1);

// The interleaved layout of a type that has one (TypeTraits::interleaved).
struct InterleavedLayout {
  int offset;                // added to its quants to make them unsigned: sum_x_blocks' offset
  std::size_t quants_bytes;  // one block's quants for the 16 rows of a group
  // The reference loops: groups [g0, g1) of a `rows`-row matrix (rows past it padded with the
  // type's zeros), and row r read back as the type's blocks.
  void (*copy_groups)(uint8_t* dst, const void* src, int rows, std::size_t g0, std::size_t g1,
                      int nb);
  void (*deinterleave_row)(void* row, const uint8_t* w, int r, int n);
};

// What a weight type is (weight_types.cpp), on every ISA.
struct TypeTraits {
  const char* name;   // ggml's name where ggml has the type
  int block;          // values a block holds
  int block_bytes;    // bytes a block takes (scales held apart not counted)
  bool quantized;     // not plain floats (f32, f16): --quantize targets and sources, GGUF metadata
  bool scales_apart;  // its scales lie apart from its values, in Operand::scales (one per
                      // Operand::group_size values, group_size fixed by the matrix)
  WeightType input;   // the form its products take x in: x through that type's quantize_row
                      // (f32: x as it is)
  bool batch_widened;  // batches widen each tile to f32 (dequantize_row, exact) for f32's matmul:
                       // its matvec is f32's on the widened rows (f16)
  const InterleavedLayout* interleaved;  // null: no interleaved layout

  // Bytes of `values` values (a whole number of blocks), the scales apart not counted.
  std::size_t bytes_of(std::size_t values) const { return values / block * block_bytes; }
};

// One weight type's kernels on one instruction set. Null where it has none: no matmul (a batch
// runs the matvec once per token, or widens: TypeTraits::batch_widened), no interleave_groups /
// matmul_interleaved (no interleaved layout).
struct TypeKernels {
  QuantizeRow quantize_row = nullptr;
  DequantizeRow dequantize_row = nullptr;
  Matvec matvec = nullptr;
  Matmul matmul = nullptr;
  InterleaveGroups interleave_groups = nullptr;
  MatmulInterleaved matmul_interleaved = nullptr;
};

// One instruction set's kernels: every weight type's, and the loops that are the same for all.
struct IsaKernels {
  std::array<TypeKernels, kWeightTypes> types;
  // A batch of tokens copies each tile of a type with an interleaved layout into it first: true
  // where the ISA has kernels of its own for that layout (AVX-512 VNNI, AVX2). They run a batch
  // about twice as fast as ggml's layout from cache; weights stay in ggml's layout in memory, as a
  // single token's matvec streams them from DRAM faster that way (measured on Zen 4: ~30 against
  // 16-22 GB/s a core).
  bool interleaves_batches = false;
  // Attention's loops and the exponentials, the reference's floats on every path (kernels below:
  // key_scores, weighted_sums, expf_elements: libm's expf).
  void (*key_scores)(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                     int queries, const float* keys, int count, int n, float scale) = nullptr;
  void (*weighted_sums)(float* out, std::ptrdiff_t out_stride, const float* w,
                        std::ptrdiff_t w_stride, int queries, const float* rows,
                        std::ptrdiff_t stride, int count, int n) = nullptr;
  void (*exp_f32)(float* y, const float* x, int n) = nullptr;
  // x's block sums for the interleaved kernels (sum_x_blocks), for a type's offset.
  void (*sum_x_blocks)(XBlockSum* out, const BlockQ8_0* x, int blocks, int offset) = nullptr;

  const TypeKernels& operator[](WeightType type) const {
    return types[static_cast<std::size_t>(type)];
  }
};

const TypeTraits& type_traits(WeightType type);
// The kernels of an instruction set; scalar's when that one is not available.
const IsaKernels& isa_kernels(Isa isa);
// The ones of detected_isa(), chosen once.
const IsaKernels& isa_kernels();

// Through isa_kernels(): n floats into `type` (x quantized for a product's input included: every
// matvec input passes here) and back.
void quantize_row(WeightType type, const Destination& y, const float* x, int n);
void dequantize_row(WeightType type, float* y, const Operand& x, int n);
// Rows from r on of a matrix of n columns whose row 0 is `w`.
Operand rows_from(WeightType type, const Operand& w, int r, int n);

// Interleaved blocks: a type's blocks (Q8_0, Q4_0) laid out for SIMD (as llama.cpp repacks
// weights for its CPU kernels). Rows go in groups of kInterleave (the last group padded with
// zero rows); a group holds its blocks column by column, first every block's quants, then every
// block's 16 scales. Block b of a group: the quants of its 16 rows as 4-byte pieces, piece k of
// every row before piece k + 1, so that one 64-byte vector holds 4 bytes of each row, one row a
// 32-bit lane: a dot-product instruction with 4 bytes of x broadcast then sums a row per lane,
// and nothing is summed across lanes. Q8_0 quants are stored plus 128 (unsigned, as vpdpbusd
// takes them); Q4_0 keeps its nibble bytes (piece k: bytes 4k..4k+3, values 4k.. and 16+4k..).
constexpr int kInterleave = 16;
constexpr std::size_t kQuantsQ8_0x16 = kInterleave * kBlock;      // bytes of one block's quants
constexpr std::size_t kQuantsQ4_0x16 = kInterleave * kBlock / 2;
constexpr std::size_t kScalesX16 = kInterleave * sizeof(uint16_t);
// For a type with an interleaved layout (TypeTraits::interleaved):
// bytes of a rows x n matrix interleaved, rows rounded up to a whole group;
std::size_t interleaved_bytes(WeightType type, int rows, int n);
// rows [0, rows) of src (the type's blocks, n values a row) into groups from dst on, whole groups
// through isa_kernels()'s copy, a padded last group (rows % 16 != 0) by the reference loops;
void interleave(WeightType type, uint8_t* dst, const void* src, int rows, int n);
// row r of an interleaved matrix back as the type's blocks;
void deinterleave_row(WeightType type, void* row, const uint8_t* w, int r, int n);
// x's block sums (x: `blocks` Q8_0 blocks from quantize_row) for the type's offset.
void sum_x_blocks(WeightType type, XBlockSum* out, const void* x, int blocks);

// Reference kernels (scalar, run.c's order of operations).
// y[i] = expf(x[i]), libm's float bit for bit (y may be x); vectorized where the ISA allows.
void expf_elements(float* y, const float* x, int n);
void rmsnorm(float* out, const float* x, const float* weight, int n, float eps);
void softmax(float* x, int n);
// Rotates pairs (q[i], q[i+1]) for i < q_dim, and the same pairs of k for i < k_dim, at position
// pos, with the frequency depending on i % head_size (run.c's formula, base `theta`).
void rope(float* q, float* k, int q_dim, int k_dim, int head_size, int pos, float theta);
// hb[i] = silu(hb[i]) * hb2[i]
void swiglu(float* hb, const float* hb2, int n);
// Symmetric int8 quantization in groups of gs: s[g] = max|x| / 127, q = round(x / s).
void quantize_q8(int8_t* q, float* s, const float* x, int n, int gs);
// y += a * x
void axpy(float* y, float a, const float* x, int n);
// sum_i a[i] * b[i], in order
float dot(const float* a, const float* b, int n);
// Attention. Cached keys lie in blocks of kKeyBlock positions, each block element-major: element
// i of the block's position j at block[i * kKeyBlock + j], blocks n * kKeyBlock floats apart, so
// that one 16-lane vector holds element i of 16 positions and a score is a lane's chain of
// multiplies and adds, with no transposes and nothing summed across lanes.
constexpr int kKeyBlock = 16;
inline std::size_t key_block_offset(int pos, int i, int n) {
  return (std::size_t(pos / kKeyBlock) * n + i) * kKeyBlock + pos % kKeyBlock;
}
// For each of `queries` queries (q + k * q_stride, n floats) and each key j < count:
// out[k * out_stride + j] = dot(query, key j, n) / scale, exactly dot()'s float then the
// division (run.c's score). The last block is read whole (its floats past count are never used).
void key_scores(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                int queries, const float* keys, int count, int n, float scale);
// softmax() of each of `rows` rows of n floats, x + r * stride (the sums of several rows run side
// by side; each row's floats are softmax()'s).
void softmax_rows(float* x, std::ptrdiff_t stride, int rows, int n);
// For each weight vector k (w + k * w_stride, count floats) and i < n: out[k * out_stride + i] =
// sum over r < count of w_k[r] * rows[r * stride + i], exactly the floats of out = 0 then
// axpy(out, w_k[r], rows + r * stride, n) for r = 0, 1, ... (the weighted sum of cached values).
void weighted_sums(float* out, std::ptrdiff_t out_stride, const float* w, std::ptrdiff_t w_stride,
                   int queries, const float* rows, std::ptrdiff_t stride, int count, int n);

}  // namespace troupe::kernels
