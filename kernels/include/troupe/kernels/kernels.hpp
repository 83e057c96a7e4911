// The math of a Llama forward pass, with no I/O and no threads.
//
// Each kernel has a plain scalar reference (kernels/src/reference.cpp) written to give exactly the
// floats llama2.c's run.c gives (same order of operations, no contraction into FMA), and, for the
// kernels that carry the memory traffic, SIMD paths (AVX2, AVX-512, NEON) chosen at run time by
// CPU features and checked against the reference in tests. Row-range arguments [r0, r1) let the
// caller split a matrix-vector product across threads without the kernels knowing about threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace troupe::kernels {

// avxvnni: AVX2 with AVX-VNNI's 256-bit int8 dot products (Intel's client cores since Alder Lake,
// which have no AVX-512); its Q8_0 / Q4_0 kernels (matvec, interleaved batches) use them, the
// rest is AVX2's.
enum class Isa { scalar, avx2, avx512, neon, avxvnni };

std::string_view isa_name(Isa isa);

// The best instruction set this CPU supports among those compiled in. The environment variable
// TROUPE_ISA (scalar|avx2|avx512|neon) lowers it, e.g. to compare paths; it never raises it.
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
// ggml's reference quantizers (n % 32 == 0): Q8_0 d = max|x|/127, q = roundf(x/d) (through
// matvec_ops(): every matvec input passes here);
// Q4_0 d = (the value of largest magnitude)/-8, q = min(15, (int8)(x/d + 8.5)).
void quantize_row_q8_0(BlockQ8_0* y, const float* x, int n);
void quantize_row_q4_0(BlockQ4_0* y, const float* x, int n);
void dequantize_row_q8_0(float* y, const BlockQ8_0* x, int n);
void dequantize_row_q4_0(float* y, const BlockQ4_0* x, int n);
void dequantize_row_f16(float* y, const uint16_t* x, int n);

// Interleaved blocks: the same Q8_0 / Q4_0 blocks laid out for SIMD (as llama.cpp repacks
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
// Bytes of a rows x n matrix (n % 32 == 0) interleaved: rows rounded up to a whole group.
std::size_t interleaved_bytes_q8_0(int rows, int n);
std::size_t interleaved_bytes_q4_0(int rows, int n);
// Rows [0, rows) of src (ggml blocks, n / 32 a row) into groups from dst on; rows % 16 may be
// nonzero only for the matrix's last rows (that group is padded).
void interleave_q8_0(uint8_t* dst, const BlockQ8_0* src, int rows, int n);
void interleave_q4_0(uint8_t* dst, const BlockQ4_0* src, int rows, int n);
// Row r of an interleaved matrix back as ggml blocks (n / 32 of them).
void deinterleave_row_q8_0(BlockQ8_0* row, const uint8_t* w, int r, int n);
void deinterleave_row_q4_0(BlockQ4_0* row, const uint8_t* w, int r, int n);
// The x side of a batch against interleaved blocks, per token and block: the start of the
// kernels' exact integer sum, -offset * (sum of x's 32 quants), which takes off the offset that
// made the weight quants unsigned (+128 for Q8_0, +8 for Q4_0's nibbles), and x's scale as a
// float. It depends on x alone, so a product computes it once per token for all of its tiles.
struct XBlockSum {
  int32_t start;
  float d;
};
void sum_x_blocks_q8_0x16(XBlockSum* out, const BlockQ8_0* x, int blocks);
void sum_x_blocks_q4_0x16(XBlockSum* out, const BlockQ8_0* x, int blocks);
// True when matmul_ops() has kernels of its own for interleaved blocks (AVX-512 VNNI, AVX2). They
// run a batch about twice as fast as ggml's layout from cache, so a batch of tokens interleaves
// each tile of weights first. Weights stay in ggml's layout in memory: a single token's matvec
// streams them from DRAM faster that way (measured on Zen 4: ~30 against 16-22 GB/s a core).
bool prefers_interleaved_blocks();

// One instruction set's kernels: matrix-vector products over rows [r0, r1) of a row-major matrix
// with n columns, and the loops around them that have SIMD paths.
//
// Every path computes a row's result from that row, x and n alone: not from r0/r1, the thread
// split or where the matrix sits in memory. So a model gives the same floats whatever the
// thread count, file layout or pipeline split, and a batch of tokens (the rows tiled, each tile
// run for every token) gives exactly the floats of one token at a time.
struct MatvecOps {
  // y[r] = sum_j w[r*n + j] * x[j]
  void (*f32)(float* y, const float* w, const float* x, int n, int r0, int r1);
  // Weights and activations quantized symmetrically in groups of gs values (n % gs == 0):
  // y[r] = sum_g (sum_k wq[r*n + g*gs + k] * xq[g*gs + k]) * ws[(r*n + g*gs)/gs] * xs[g]
  // with the group's integer sum exact in int32 and the float sum over groups in order (runq.c).
  void (*q8)(float* y, const int8_t* wq, const float* ws, const int8_t* xq, const float* xs, int n,
             int gs, int r0, int r1);
  // fp16 weights, f32 input, any n (SIMD paths sum in another order than the in-order reference).
  // Each path's result is its own f32's on the row widened (exact): batches widen tiles for f32.
  void (*f16)(float* y, const uint16_t* w, const float* x, int n, int r0, int r1);
  // ggml Q8_0 / Q4_0 weights against the input quantized to Q8_0 (quantize_row_q8_0), n % 32 == 0:
  // y[r] = sum over blocks b of (float)(int dot of block b) * (d_w[b] * d_x[b]), the float sum
  // over blocks in order: every path gives the reference's floats bit for bit. Weight quants may
  // take any value; x's must be in [-127, 127], as quantize_row_q8_0 gives (AVX2 relies on it).
  void (*q8_0)(float* y, const BlockQ8_0* w, const BlockQ8_0* x, int n, int r0, int r1);
  void (*q4_0)(float* y, const BlockQ4_0* w, const BlockQ8_0* x, int n, int r0, int r1);
  // Their input: quantize_row_q8_0, the reference's bytes on every path.
  void (*quantize_q8_0)(BlockQ8_0* y, const float* x, int n);
  // Attention's loops, element-wise work: the reference's floats on every path (key_scores,
  // weighted_sums, expf_elements: libm's expf; dequantize_row_f16: a batch's f16 tiles are
  // widened for the f32 kernel).
  void (*key_scores)(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                     int queries, const float* keys, int count, int n, float scale);
  void (*weighted_sums)(float* out, std::ptrdiff_t out_stride, const float* w,
                        std::ptrdiff_t w_stride, int queries, const float* rows,
                        std::ptrdiff_t stride, int count, int n);
  void (*exp_f32)(float* y, const float* x, int n);
  void (*widen_f16)(float* y, const uint16_t* x, int n);
};

// The matvec implementation for an instruction set; scalar when that one is not available.
const MatvecOps& matvec_ops(Isa isa);
// The one for detected_isa(), chosen once.
const MatvecOps& matvec_ops();

// Batched products: `count` tokens against rows [r0, r1), y[t * ldy + r] = row r . x_t.
//
// Each output is bit-identical to what the same ISA's matvec (matvec_ops(isa)) gives for row r
// and input x_t, so a prompt processed as a batch gives exactly the floats of one token at a time;
// the kernels only reuse each weight load for several tokens. Rows of y outside [r0, r1) are not
// written. (f16 has no batched form: a widened tile through f32 gives its floats; the llama2.c q8
// groups: the matvec once per token.)
struct MatmulOps {
  // x_t = x + t * ldx (n floats)
  void (*f32)(float* y, int ldy, const float* w, const float* x, int ldx, int n, int count, int r0,
              int r1);
  // x_t = x + t * ldx_blocks: n / 32 Q8_0 blocks from quantize_row_q8_0
  void (*q8_0)(float* y, int ldy, const BlockQ8_0* w, const BlockQ8_0* x, int ldx_blocks, int n,
               int count, int r0, int r1);
  void (*q4_0)(float* y, int ldy, const BlockQ4_0* w, const BlockQ8_0* x, int ldx_blocks, int n,
               int count, int r0, int r1);
  // Interleaved weights (above), r0 % kInterleave == 0: bit for bit the floats q8_0 / q4_0
  // give for the same blocks. xs: sum_x_blocks_q8_0x16 / _q4_0x16 of x, with x's stride.
  void (*q8_0x16)(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x, const XBlockSum* xs,
                  int ldx_blocks, int n, int count, int r0, int r1);
  void (*q4_0x16)(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x, const XBlockSum* xs,
                  int ldx_blocks, int n, int count, int r0, int r1);
  // Their inputs, the reference loops' bytes and values on every path: whole groups (16 real rows
  // each, nb blocks a row) copied into the layout (interleave_q8_0 / _q4_0 use it), and x's block
  // sums for an offset of 128 (Q8_0) or 8 (Q4_0) (sum_x_blocks_q8_0x16 / _q4_0x16).
  void (*interleave_groups_q8_0)(uint8_t* dst, const BlockQ8_0* src, int groups, int nb);
  void (*interleave_groups_q4_0)(uint8_t* dst, const BlockQ4_0* src, int groups, int nb);
  void (*sum_x_blocks)(XBlockSum* out, const BlockQ8_0* x, int blocks, int offset);
};

// As matvec_ops: scalar when `isa` is not available; the no-argument one for detected_isa(),
// chosen once (so it always pairs with matvec_ops()).
const MatmulOps& matmul_ops(Isa isa);
const MatmulOps& matmul_ops();

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
