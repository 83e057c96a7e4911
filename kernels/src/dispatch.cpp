// The kernels of each instruction set, by weight type (kernels.hpp's IsaKernels), and the run-time
// choice among them from the CPU's features and TROUPE_ISA.
#include <cstddef>
#include <cstdlib>
#include <string_view>

#include "matvec_impl.hpp"
#include "type_table.hpp"
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

// Batched products where an ISA has no batched kernel of its own: its matvec once per token
// (bit-identical by construction); x_t is x advanced by t * ldx elements of the input's type.
template <Matvec F, typename Input>
void matmul_by_tokens(float* y, int ldy, const Operand& w, const Operand& x, int ldx, int n,
                      int count, int r0, int r1) {
  const auto* xt = static_cast<const Input*>(x.data);
  for (int t = 0; t < count; t++) {
    F(y + static_cast<std::ptrdiff_t>(t) * ldy, w, xt + static_cast<std::ptrdiff_t>(t) * ldx, n, r0,
      r1);
  }
}

// Each ISA's kernels, by weight type and by name. Row conversions are the reference's on every
// ISA but where one has a faster path with the same bytes (F16C's widening, AVX-512's Q8_0
// quantizer); ISAs other than scalar start from the scalar table and list what they replace.
constexpr IsaKernels scalar_kernels{
    .types = detail::every_type<TypeKernels>({
        {WeightType::f32,
         {.quantize_row = detail::quantize_row_f32,
          .dequantize_row = detail::dequantize_row_f32,
          .matvec = detail::matvec_f32_ref,
          .matmul = matmul_by_tokens<detail::matvec_f32_ref, float>}},
        {WeightType::f16,
         {.quantize_row = detail::quantize_row_f16,
          .dequantize_row = detail::dequantize_row_f16_ref,
          .matvec = detail::matvec_f16_ref}},
        {WeightType::q8_0,
         {.quantize_row = detail::quantize_row_q8_0_ref,
          .dequantize_row = detail::dequantize_row_q8_0_ref,
          .matvec = detail::matvec_q8_0_ref,
          .matmul = matmul_by_tokens<detail::matvec_q8_0_ref, BlockQ8_0>,
          // Correct, slow: the engine does not interleave for ISAs without kernels for it.
          .interleave_groups = detail::interleave_groups_q8_0_ref,
          .matmul_interleaved = detail::matmul_q8_0x16_ref}},
        {WeightType::q4_0,
         {.quantize_row = detail::quantize_row_q4_0_ref,
          .dequantize_row = detail::dequantize_row_q4_0_ref,
          .matvec = detail::matvec_q4_0_ref,
          .matmul = matmul_by_tokens<detail::matvec_q4_0_ref, BlockQ8_0>,
          .interleave_groups = detail::interleave_groups_q4_0_ref,
          .matmul_interleaved = detail::matmul_q4_0x16_ref}},
        {WeightType::q8_groups,
         {.quantize_row = detail::quantize_row_q8_groups,
          .dequantize_row = detail::dequantize_row_q8_groups_ref,
          .matvec = detail::matvec_q8_groups_ref}},
    }),
    .interleaves_batches = false,
    .key_scores = detail::key_scores_ref,
    .weighted_sums = detail::weighted_sums_ref,
    .exp_f32 = detail::expf_elements_ref,
    .sum_x_blocks = detail::sum_x_blocks_ref,
};
#if defined(TROUPE_HAVE_X86_SIMD)
constexpr IsaKernels avx2_kernels{
    .types = detail::over(
        scalar_kernels.types,
        {
            {WeightType::f32,
             {.matvec = detail::matvec_f32_avx2,
              .matmul = detail::matmul_f32_avx2}},
            {WeightType::f16,
             {.dequantize_row = detail::dequantize_row_f16_f16c,
              .matvec = detail::matvec_f16_avx2}},
            {WeightType::q8_0,
             {.matvec = detail::matvec_q8_0_avx2,
              .matmul = detail::matmul_q8_0_avx2,
              .interleave_groups = detail::interleave_groups_q8_0_avx2,
              .matmul_interleaved = detail::matmul_q8_0x16_avx2}},
            {WeightType::q4_0,
             {.matvec = detail::matvec_q4_0_avx2,
              .matmul = detail::matmul_q4_0_avx2,
              .interleave_groups = detail::interleave_groups_q4_0_avx2,
              .matmul_interleaved = detail::matmul_q4_0x16_avx2}},
            {WeightType::q8_groups, {.matvec = detail::matvec_q8_groups_avx2}},
        }),
    .interleaves_batches = true,
    .key_scores = detail::key_scores_avx2,
    .weighted_sums = detail::weighted_sums_avx2,
    .exp_f32 = detail::expf_elements_avx2,
    .sum_x_blocks = detail::sum_x_blocks_ref,
};
// AVX-VNNI: AVX2's, but the Q8_0 / Q4_0 products with vpdpbusd: the matvec and the interleaved
// batches (where prompts spend their time).
constexpr IsaKernels avxvnni_kernels{
    .types = detail::over(
        avx2_kernels.types,
        {
            {WeightType::q8_0,
             {.matvec = detail::matvec_q8_0_avxvnni,
              .matmul_interleaved = detail::matmul_q8_0x16_avxvnni}},
            {WeightType::q4_0,
             {.matvec = detail::matvec_q4_0_avxvnni,
              .matmul_interleaved = detail::matmul_q4_0x16_avxvnni}},
        }),
    .interleaves_batches = true,
    .key_scores = detail::key_scores_avx2,
    .weighted_sums = detail::weighted_sums_avx2,
    .exp_f32 = detail::expf_elements_avx2,
    .sum_x_blocks = detail::sum_x_blocks_ref,
};
constexpr IsaKernels avx512_kernels{
    .types = detail::over(
        scalar_kernels.types,
        {
            {WeightType::f32,
             {.matvec = detail::matvec_f32_avx512,
              .matmul = detail::matmul_f32_avx512}},
            {WeightType::f16,
             {.dequantize_row = detail::dequantize_row_f16_f16c,
              .matvec = detail::matvec_f16_avx512}},
            {WeightType::q8_0,
             {.quantize_row = detail::quantize_row_q8_0_avx512,
              .matvec = detail::matvec_q8_0_avx512,
              .matmul = detail::matmul_q8_0_avx512,
              .interleave_groups = detail::interleave_groups_q8_0_avx512,
              .matmul_interleaved = detail::matmul_q8_0x16_avx512}},
            {WeightType::q4_0,
             {.matvec = detail::matvec_q4_0_avx512,
              .matmul = detail::matmul_q4_0_avx512,
              .interleave_groups = detail::interleave_groups_q4_0_avx512,
              .matmul_interleaved = detail::matmul_q4_0x16_avx512}},
            {WeightType::q8_groups, {.matvec = detail::matvec_q8_groups_avx512}},
        }),
    .interleaves_batches = true,
    .key_scores = detail::key_scores_avx512,
    .weighted_sums = detail::weighted_sums_avx512,
    .exp_f32 = detail::expf_elements_avx512,
    .sum_x_blocks = detail::sum_x_blocks_avx512,
};
#endif
#if defined(TROUPE_HAVE_NEON)
// NEON's matvecs, batches token by token (scalar's matmul_by_tokens over them).
constexpr IsaKernels neon_kernels{
    .types = detail::over(
        scalar_kernels.types,
        {
            {WeightType::f32,
             {.matvec = detail::matvec_f32_neon,
              .matmul = matmul_by_tokens<detail::matvec_f32_neon, float>}},
            {WeightType::f16, {.matvec = detail::matvec_f16_neon}},
            {WeightType::q8_0,
             {.matvec = detail::matvec_q8_0_neon,
              .matmul = matmul_by_tokens<detail::matvec_q8_0_neon, BlockQ8_0>}},
            {WeightType::q4_0,
             {.matvec = detail::matvec_q4_0_neon,
              .matmul = matmul_by_tokens<detail::matvec_q4_0_neon, BlockQ8_0>}},
            {WeightType::q8_groups, {.matvec = detail::matvec_q8_groups_neon}},
        }),
    .interleaves_batches = false,
    .key_scores = detail::key_scores_ref,
    .weighted_sums = detail::weighted_sums_ref,
    .exp_f32 = detail::expf_elements_ref,
    .sum_x_blocks = detail::sum_x_blocks_ref,
};
// With the dot-product extension (sdot) for the int8 products.
constexpr IsaKernels neon_dotprod_kernels{
    .types = detail::over(
        neon_kernels.types,
        {
            {WeightType::q8_0,
             {.matvec = detail::matvec_q8_0_neon_dotprod,
              .matmul = matmul_by_tokens<detail::matvec_q8_0_neon_dotprod, BlockQ8_0>}},
            {WeightType::q4_0,
             {.matvec = detail::matvec_q4_0_neon_dotprod,
              .matmul = matmul_by_tokens<detail::matvec_q4_0_neon_dotprod, BlockQ8_0>}},
            {WeightType::q8_groups, {.matvec = detail::matvec_q8_groups_neon_dotprod}},
        }),
    .interleaves_batches = false,
    .key_scores = detail::key_scores_ref,
    .weighted_sums = detail::weighted_sums_ref,
    .exp_f32 = detail::expf_elements_ref,
    .sum_x_blocks = detail::sum_x_blocks_ref,
};
#endif

Isa best_isa() {
  for (Isa isa : kIsasBestFirst) {
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
    case Isa::neon_dotprod: return "neon_dotprod";
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
    case Isa::neon_dotprod:
#if defined(TROUPE_HAVE_NEON)
      return cpu_has_dotprod();
#else
      return false;
#endif
  }
  return false;
}

Isa detected_isa() {
  // Read each call (it is cheap) so that tests and tools can change TROUPE_ISA; isa_kernels()
  // below is what the engine uses, and that one is fixed at first use.
  const Isa best = best_isa();
  const char* env = std::getenv("TROUPE_ISA");
  if (env == nullptr) return best;
  const std::string_view want(env);
  for (Isa isa : kIsasBestFirst) {
    // Anything available is at most `best`, so honouring it can only lower the choice.
    // Unknown names and unavailable ISAs are ignored.
    if (want == isa_name(isa) && isa_available(isa)) return isa;
  }
  return best;
}

const IsaKernels& isa_kernels(Isa isa) {
  if (!isa_available(isa)) return scalar_kernels;
  switch (isa) {
#if defined(TROUPE_HAVE_X86_SIMD)
    case Isa::avx2: return avx2_kernels;
    case Isa::avxvnni: return avxvnni_kernels;
    case Isa::avx512: return avx512_kernels;
#endif
#if defined(TROUPE_HAVE_NEON)
    case Isa::neon: return neon_kernels;
    case Isa::neon_dotprod: return neon_dotprod_kernels;
#endif
    default: return scalar_kernels;
  }
}

const IsaKernels& isa_kernels() {
  static const IsaKernels& kernels = isa_kernels(detected_isa());  // thread-safe one-time init
  return kernels;
}

// Attention's loops.
void key_scores(float* out, std::ptrdiff_t out_stride, const float* q, std::ptrdiff_t q_stride,
                int queries, const float* keys, int count, int n, float scale) {
  isa_kernels().key_scores(out, out_stride, q, q_stride, queries, keys, count, n, scale);
}

void weighted_sums(float* out, std::ptrdiff_t out_stride, const float* w, std::ptrdiff_t w_stride,
                   int queries, const float* rows, std::ptrdiff_t stride, int count, int n) {
  isa_kernels().weighted_sums(out, out_stride, w, w_stride, queries, rows, stride, count, n);
}

// softmax's and SwiGLU's exponentials.
void expf_elements(float* y, const float* x, int n) { isa_kernels().exp_f32(y, x, n); }

}  // namespace troupe::kernels
