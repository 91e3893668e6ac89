// The scalar path: cell.hpp's and rule.hpp's per-cell functions as they are,
// one cell at a time (the very code the CUDA kernels run). It serves CPUs
// without a SIMD path (x86-64 before AVX2, aarch64, ...) and is the
// yardstick that tests/test_isa.py holds the SIMD paths to.
#include "kernels.hpp"
#include "ncacore/cell.hpp"
#include "ncacore/rule.hpp"

namespace nca {

namespace {

bool always() { return true; }

void init_cells(const float* cdf, int colors, uint64_t seed, uint32_t domain, uint64_t sim, int n, uint8_t* grid) {
  for (int i = 0; i < n; ++i)
    grid[i] = static_cast<uint8_t>(initial_colour(cdf, colors, initial_bits(seed, domain, sim, uint32_t(i))));
}

void fill_weights(uint64_t seed, uint64_t rule_id, int layer, int n, float scale, float* out, float*) {
  for (int j = 0; j < n; ++j) out[j] = rule_weight(seed, rule_id, layer, j, scale);
}

bool step(SimState& s, const RuleTables& rule, uint32_t step_no) {
  const Config& cfg = s.cfg;
  bool drew_noise = false;
  uint8_t nb[9];
  float l[kMaxColors];
  for (int i = 0; i < cfg.cells(); ++i) {
    for (int p = 0; p < 9; ++p) nb[p] = s.grid[s.nbr[size_t(i) * 9 + p]];
    cell_logits(rule.eff.data(), rule.w2.data(), rule.w3.data(), cfg.colors, nb, l);
    s.next[i] = static_cast<uint8_t>(select_colour(l, cfg.colors, s.grid[i], cfg.identity_bias, cfg.temperature,
                                                   s.seed, s.noise_domain, s.sim, step_no, uint32_t(i),
                                                   &drew_noise));
  }
  return drew_noise;
}

}  // namespace

const Kernels kScalarKernels{"scalar", always, init_cells, fill_weights, step};

}  // namespace nca
