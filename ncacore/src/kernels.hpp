// The instruction-set-specific parts of the CPU core. Each path is one
// table of functions; isa.cpp picks one at run time (isa.hpp). Every path
// gives bit-identical grids, weights and tokens: the scalar path runs
// cell.hpp's per-cell functions as they are, the SIMD paths compute the same
// operations in the same per-cell order (tests/test_isa.py compares them).
//
// The SIMD paths are compiled for their instruction set with a target
// pragma that starts after every header is included (kernels_simd.inc), not
// with per-file -m flags: an inline function or template that a header
// defines is then compiled for baseline x86-64 wherever it is emitted, so
// the linker cannot keep an AVX-512 copy of it for code that runs anywhere.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ncacore/rollout.hpp"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define NCA_X86_KERNELS 1
#endif

namespace nca {

constexpr int kLanes = 8;          // cells per SIMD block (one AVX register of floats)
constexpr int kNoisyBatch = 4096;  // noisy cells held before they draw (a multiple of kLanes)
constexpr int kSlack = 32;         // bytes of slack so rows can be copied in 16-byte chunks

struct Kernels {
  const char* name;
  // Whether this CPU (and OS) can run the path.
  bool (*supported)();
  // grid[i] = initial_colour(cdf, colors, initial_bits(seed, domain, sim, i)) for i in [0, n).
  void (*init_cells)(const float* cdf, int colors, uint64_t seed, uint32_t domain, uint64_t sim, int n,
                     uint8_t* grid);
  // out[j] = rule_weight(seed, rule_id, layer, j, scale) for j in [0, n);
  // scratch holds weight_scratch(n) floats.
  void (*fill_weights)(uint64_t seed, uint64_t rule_id, int layer, int n, float scale, float* out,
                       float* scratch);
  // Step `step_no` of every cell, s.grid into s.next; true when a cell drew noise.
  bool (*step)(SimState& s, const RuleTables& rule, uint32_t step_no);
};

inline size_t weight_scratch(int n) { return size_t(n) + 3 + 8; }  // n rounded up to 4, plus 32-byte alignment

extern const Kernels kScalarKernels;
#if defined(NCA_X86_KERNELS)
extern const Kernels kAvx2Kernels, kAvx512Kernels;
#endif

// The active path (isa.cpp).
const Kernels& kernels();

}  // namespace nca
