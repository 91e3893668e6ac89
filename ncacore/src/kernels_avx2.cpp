// The SIMD path for x86-64 CPUs with AVX2 and FMA (x86-64-v3: Haswell, Zen
// and later).
#include "kernels.hpp"
#if defined(NCA_X86_KERNELS)
#define NCA_SIMD_AVX512 0
#define NCA_SIMD_TARGET "avx2,fma,bmi,bmi2"
#include "kernels_simd.inc"

namespace nca {
namespace {
bool supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
         __builtin_cpu_supports("bmi2");
}
}  // namespace

const Kernels kAvx2Kernels{"avx2", supported, init_cells, fill_weights, step};
}  // namespace nca
#endif
