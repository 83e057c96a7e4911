// Run-time choice of the matvec implementation from the CPU's features and TROUPE_ISA.
#include <cstddef>
#include <cstdlib>
#include <string_view>

#include "matvec_impl.hpp"
#include "troupe/kernels/kernels.hpp"

#if defined(TROUPE_HAVE_NEON) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(TROUPE_HAVE_X86_SIMD)
#include <cpuid.h>
#endif

namespace troupe::kernels {

namespace {

#if defined(TROUPE_HAVE_NEON)
// sdot (ARMv8.2 dot product) is optional: e.g. Cortex-A72 (Raspberry Pi 4) lacks it.
bool cpu_has_dotprod() {
#if defined(__APPLE__)
  return true;  // every Apple arm64 core has it
#elif defined(__linux__)
  constexpr unsigned long hwcap_asimddp = 1ul << 20;  // HWCAP_ASIMDDP in <asm/hwcap.h>
  return (getauxval(AT_HWCAP) & hwcap_asimddp) != 0;
#else
  return false;
#endif
}
#endif

#if defined(TROUPE_HAVE_X86_SIMD)
// F16C (CPUID.1:ECX bit 29). Not through __builtin_cpu_supports: clang 14 does not know "f16c".
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}
// AVX-VNNI (CPUID.(EAX=7, ECX=1):EAX bit 4), from cpuid for the same reason.
bool cpu_has_avx_vnni() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) != 0 && (eax & (1u << 4)) != 0;
}
#endif

constexpr MatvecOps scalar_ops{detail::matvec_f32_ref,       detail::matvec_q8_ref,
                               detail::matvec_f16_ref,       detail::matvec_q8_0_ref,
                               detail::matvec_q4_0_ref,      detail::quantize_row_q8_0_ref,
                               detail::key_scores_ref,       detail::weighted_sums_ref,
                               detail::expf_elements_ref,    detail::dequantize_row_f16_ref};
#if defined(TROUPE_HAVE_X86_SIMD)
constexpr MatvecOps avx2_ops{detail::matvec_f32_avx2,     detail::matvec_q8_avx2,
                             detail::matvec_f16_avx2,     detail::matvec_q8_0_avx2,
                             detail::matvec_q4_0_avx2,    detail::quantize_row_q8_0_ref,
                             detail::key_scores_avx2,     detail::weighted_sums_avx2,
                             detail::expf_elements_avx2,  detail::dequantize_row_f16_f16c};
// AVX-VNNI: AVX2's, but the Q8_0 / Q4_0 products with vpdpbusd.
constexpr MatvecOps avxvnni_ops{detail::matvec_f32_avx2,     detail::matvec_q8_avx2,
                                detail::matvec_f16_avx2,     detail::matvec_q8_0_avxvnni,
                                detail::matvec_q4_0_avxvnni, detail::quantize_row_q8_0_ref,
                                detail::key_scores_avx2,     detail::weighted_sums_avx2,
                                detail::expf_elements_avx2,  detail::dequantize_row_f16_f16c};
constexpr MatvecOps avx512_ops{detail::matvec_f32_avx512,    detail::matvec_q8_avx512,
                               detail::matvec_f16_avx512,    detail::matvec_q8_0_avx512,
                               detail::matvec_q4_0_avx512,   detail::quantize_row_q8_0_avx512,
                               detail::key_scores_avx512,    detail::weighted_sums_avx512,
                               detail::expf_elements_avx512, detail::dequantize_row_f16_f16c};
#endif
#if defined(TROUPE_HAVE_NEON)
constexpr MatvecOps neon_dotprod_ops{
    detail::matvec_f32_neon,          detail::matvec_q8_neon_dotprod,
    detail::matvec_f16_neon,          detail::matvec_q8_0_neon_dotprod,
    detail::matvec_q4_0_neon_dotprod, detail::quantize_row_q8_0_ref,
    detail::key_scores_ref,           detail::weighted_sums_ref,
    detail::expf_elements_ref,        detail::dequantize_row_f16_ref};
constexpr MatvecOps neon_plain_ops{detail::matvec_f32_neon,   detail::matvec_q8_neon,
                                   detail::matvec_f16_neon,   detail::matvec_q8_0_neon,
                                   detail::matvec_q4_0_neon,  detail::quantize_row_q8_0_ref,
                                   detail::key_scores_ref,    detail::weighted_sums_ref,
                                   detail::expf_elements_ref, detail::dequantize_row_f16_ref};
#endif

// Batched products where an ISA has no batched kernel: its matvec once per token (bit-identical
// by construction).
template <const MatvecOps& Ops>
void matmul_f32_by_rows(float* y, int ldy, const float* w, const float* x, int ldx, int n,
                        int count, int r0, int r1) {
  for (int t = 0; t < count; t++) {
    Ops.f32(y + static_cast<std::ptrdiff_t>(t) * ldy, w, x + static_cast<std::ptrdiff_t>(t) * ldx,
            n, r0, r1);
  }
}
template <const MatvecOps& Ops>
void matmul_q8_0_by_rows(float* y, int ldy, const BlockQ8_0* w, const BlockQ8_0* x,
                         int ldx_blocks, int n, int count, int r0, int r1) {
  for (int t = 0; t < count; t++) {
    Ops.q8_0(y + static_cast<std::ptrdiff_t>(t) * ldy, w,
             x + static_cast<std::ptrdiff_t>(t) * ldx_blocks, n, r0, r1);
  }
}
template <const MatvecOps& Ops>
void matmul_q4_0_by_rows(float* y, int ldy, const BlockQ4_0* w, const BlockQ8_0* x,
                         int ldx_blocks, int n, int count, int r0, int r1) {
  for (int t = 0; t < count; t++) {
    Ops.q4_0(y + static_cast<std::ptrdiff_t>(t) * ldy, w,
             x + static_cast<std::ptrdiff_t>(t) * ldx_blocks, n, r0, r1);
  }
}
// Interleaved blocks where an ISA has no kernels for them: the reference, token by token
// (correct, slow; the engine does not interleave for these ISAs). It needs no x sums.
void matmul_q8_0x16_by_rows(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x,
                            const XBlockSum*, int ldx_blocks, int n, int count, int r0, int r1) {
  for (int t = 0; t < count; t++) {
    detail::matvec_q8_0x16_ref(y + static_cast<std::ptrdiff_t>(t) * ldy, w,
                               x + static_cast<std::ptrdiff_t>(t) * ldx_blocks, n, r0, r1);
  }
}
void matmul_q4_0x16_by_rows(float* y, int ldy, const uint8_t* w, const BlockQ8_0* x,
                            const XBlockSum*, int ldx_blocks, int n, int count, int r0, int r1) {
  for (int t = 0; t < count; t++) {
    detail::matvec_q4_0x16_ref(y + static_cast<std::ptrdiff_t>(t) * ldy, w,
                               x + static_cast<std::ptrdiff_t>(t) * ldx_blocks, n, r0, r1);
  }
}
template <const MatvecOps& Ops>
constexpr MatmulOps by_rows_ops{matmul_f32_by_rows<Ops>,
                                matmul_q8_0_by_rows<Ops>,
                                matmul_q4_0_by_rows<Ops>,
                                matmul_q8_0x16_by_rows,
                                matmul_q4_0x16_by_rows,
                                detail::interleave_groups_q8_0_ref,
                                detail::interleave_groups_q4_0_ref,
                                detail::sum_x_blocks_ref};

constexpr MatmulOps scalar_matmul_ops = by_rows_ops<scalar_ops>;
#if defined(TROUPE_HAVE_X86_SIMD)
constexpr MatmulOps avx2_matmul_ops{detail::matmul_f32_avx2,
                                    detail::matmul_q8_0_avx2,
                                    detail::matmul_q4_0_avx2,
                                    detail::matmul_q8_0x16_avx2,
                                    detail::matmul_q4_0x16_avx2,
                                    detail::interleave_groups_q8_0_avx2,
                                    detail::interleave_groups_q4_0_avx2,
                                    detail::sum_x_blocks_ref};
// AVX-VNNI: AVX2's batched kernels but the interleaved ones (where prompts spend their time),
// those with vpdpbusd.
constexpr MatmulOps avxvnni_matmul_ops{detail::matmul_f32_avx2,
                                       detail::matmul_q8_0_avx2,
                                       detail::matmul_q4_0_avx2,
                                       detail::matmul_q8_0x16_avxvnni,
                                       detail::matmul_q4_0x16_avxvnni,
                                       detail::interleave_groups_q8_0_avx2,
                                       detail::interleave_groups_q4_0_avx2,
                                       detail::sum_x_blocks_ref};
constexpr MatmulOps avx512_matmul_ops{detail::matmul_f32_avx512,
                                      detail::matmul_q8_0_avx512,
                                      detail::matmul_q4_0_avx512,
                                      detail::matmul_q8_0x16_avx512,
                                      detail::matmul_q4_0x16_avx512,
                                      detail::interleave_groups_q8_0_avx512,
                                      detail::interleave_groups_q4_0_avx512,
                                      detail::sum_x_blocks_avx512};
#endif
#if defined(TROUPE_HAVE_NEON)
constexpr MatmulOps neon_dotprod_matmul_ops = by_rows_ops<neon_dotprod_ops>;
constexpr MatmulOps neon_plain_matmul_ops = by_rows_ops<neon_plain_ops>;
#endif

Isa best_isa() {
  for (Isa isa : {Isa::avx512, Isa::avxvnni, Isa::avx2, Isa::neon}) {
    if (isa_available(isa)) return isa;
  }
  return Isa::scalar;
}

}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
    case Isa::avxvnni: return "avxvnni";
  }
  return "unknown";
}

bool isa_available(Isa isa) {
#if defined(TROUPE_HAVE_X86_SIMD)
  __builtin_cpu_init();  // needed if we run before libgcc's constructor (static initializers)
#endif
  switch (isa) {
    case Isa::scalar:
      return true;
    case Isa::avx2:
#if defined(TROUPE_HAVE_X86_SIMD)
      // libgcc's checks include the OS saving the wider registers (XGETBV). F16C (the f16 path)
      // comes with every AVX2 CPU, but a hypervisor may hide it.
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
#else
      return false;
#endif
    case Isa::avxvnni:
#if defined(TROUPE_HAVE_X86_SIMD)
      return isa_available(Isa::avx2) && cpu_has_avx_vnni();
#else
      return false;
#endif
    case Isa::avx512:
#if defined(TROUPE_HAVE_X86_SIMD)
      // The q8 path uses VNNI (vpdpbusd), so a CPU without it (Skylake-X) gets avx2 instead.
      return isa_available(Isa::avx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512vnni");
#else
      return false;
#endif
    case Isa::neon:
#if defined(TROUPE_HAVE_NEON)
      return true;  // Advanced SIMD is mandatory on AArch64
#else
      return false;
#endif
  }
  return false;
}

Isa detected_isa() {
  // Read each call (it is cheap) so that tests and tools can change TROUPE_ISA; matvec_ops()
  // below is what the engine uses, and that one is fixed at first use.
  const Isa best = best_isa();
  const char* env = std::getenv("TROUPE_ISA");
  if (env == nullptr) return best;
  const std::string_view want(env);
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avxvnni, Isa::avx512, Isa::neon}) {
    // Anything available is at most `best`, so honouring it can only lower the choice.
    // Unknown names and unavailable ISAs are ignored.
    if (want == isa_name(isa) && isa_available(isa)) return isa;
  }
  return best;
}

const MatvecOps& matvec_ops(Isa isa) {
  if (!isa_available(isa)) return scalar_ops;
  switch (isa) {
#if defined(TROUPE_HAVE_X86_SIMD)
    case Isa::avx2: return avx2_ops;
    case Isa::avxvnni: return avxvnni_ops;
    case Isa::avx512: return avx512_ops;
#endif
#if defined(TROUPE_HAVE_NEON)
    case Isa::neon: return cpu_has_dotprod() ? neon_dotprod_ops : neon_plain_ops;
#endif
    default: return scalar_ops;
  }
}

const MatvecOps& matvec_ops() {
  static const MatvecOps& ops = matvec_ops(detected_isa());  // thread-safe one-time init
  return ops;
}

}  // namespace troupe::kernels

namespace troupe::kernels {

const MatmulOps& matmul_ops(Isa isa) {
  if (!isa_available(isa)) return scalar_matmul_ops;
  switch (isa) {
#if defined(TROUPE_HAVE_X86_SIMD)
    case Isa::avx2: return avx2_matmul_ops;
    case Isa::avxvnni: return avxvnni_matmul_ops;
    case Isa::avx512: return avx512_matmul_ops;
#endif
#if defined(TROUPE_HAVE_NEON)
    case Isa::neon: return cpu_has_dotprod() ? neon_dotprod_matmul_ops : neon_plain_matmul_ops;
#endif
    default: return scalar_matmul_ops;
  }
}

const MatmulOps& matmul_ops() {
  static const MatmulOps& ops = matmul_ops(detected_isa());
  return ops;
}

// Attention's loops.
void key_scores(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                int queries, const float* keys, int count, int n, float scale) {
  matvec_ops().key_scores(out, out_stride, q, q_stride, queries, keys, count, n, scale);
}

void weighted_sums(float* out, std::ptrdiff_t out_stride, const float* w, std::ptrdiff_t w_stride,
                   int queries, const float* rows, std::ptrdiff_t stride, int count, int n) {
  matvec_ops().weighted_sums(out, out_stride, w, w_stride, queries, rows, stride, count, n);
}

// Batches of f16 weights widen each tile (Transformer::matmul), loads with --quantize each row.
void dequantize_row_f16(float* y, const uint16_t* x, int n) { matvec_ops().widen_f16(y, x, n); }

// softmax's and SwiGLU's exponentials.
void expf_elements(float* y, const float* x, int n) { matvec_ops().exp_f32(y, x, n); }

// Every matvec input passes through it (a batch's quantization was ~4% of a TinyLlama prompt
// in the scalar loop).
void quantize_row_q8_0(BlockQ8_0* y, const float* x, int n) { matvec_ops().quantize_q8_0(y, x, n); }

bool prefers_interleaved_blocks() {
#if defined(TROUPE_HAVE_X86_SIMD)
  return &matmul_ops() == &avx512_matmul_ops || &matmul_ops() == &avx2_matmul_ops ||
         &matmul_ops() == &avxvnni_matmul_ops;
#else
  return false;
#endif
}


}  // namespace troupe::kernels
