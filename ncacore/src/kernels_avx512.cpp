// The SIMD path for x86-64 CPUs with AVX-512 (x86-64-v4: Skylake-SP, Ice
// Lake, Zen 4 and later). The AVX2 path's 8-lane code, plus what AVX-512VL
// adds to it: compares into mask registers (one-uop blends), vpermt2ps for
// conv1's 16-entry lookups and 32 vector registers. About 20% more tokens/s
// than the AVX2 path, as fast as a -march=native build
// (benchmarks/bench_isa.py).
#include "kernels.hpp"
#if defined(NCA_X86_KERNELS)
#define NCA_SIMD_AVX512 1
#define NCA_SIMD_TARGET "avx2,fma,bmi,bmi2,avx512f,avx512vl,avx512bw,avx512dq,avx512cd"
#include "kernels_simd.inc"

namespace nca {
namespace {
bool supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
         __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd");
}
}  // namespace

const Kernels kAvx512Kernels{"avx512", supported, init_cells, fill_weights, step};
}  // namespace nca
#endif
