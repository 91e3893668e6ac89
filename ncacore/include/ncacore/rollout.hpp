// CPU simulation of one NCA: the initial grid and the step. The hot loops run
// on the instruction-set path chosen at run time (isa.hpp, src/kernels.hpp);
// the SIMD paths vectorise across cells keeping cell.hpp's per-cell order.
#pragma once
#include <cstdint>
#include <vector>

#include "ncacore/config.hpp"

namespace nca {

// One rule in the forms the CPU step wants.
struct RuleTables {
  std::vector<float> w1, w2, w3;  // raw weights (rule.hpp layouts)
  std::vector<float> eff;         // (9, C, 4) effective conv1 table
  std::vector<float> w2b, w3b;    // conv2/conv3 weights repeated across 8 lanes
  std::vector<float> eff16;       // (9, 4, 16) effective table by colour, for C <= 16

  // Sample rule `rule_id` of the stream keyed by `seed`.
  void sample(const Config& cfg, uint64_t seed, uint64_t rule_id);
  // Use given weights (e.g. the reference vectors').
  void set(const Config& cfg, const float* w1, const float* w2, const float* w3);

 private:
  void derive(const Config& cfg);
  std::vector<float> scratch_;  // sample()'s draws (kernels.hpp's fill_weights)
};

// Which simulation stream a Simulator draws its grid and noise from. Scoring
// simulations are separate from training ones (docs/nca-semantics.md: "The scored
// simulation is not reused for training data").
enum class SimKind { kTrain, kScore };

// A simulation's buffers: owned by Simulator, read and written by the
// instruction-set kernels of its step (src/kernels.hpp).
struct SimState {
  Config cfg;
  std::vector<int32_t> nbr;  // (cells, 9) neighbour indices, (dy, dx) row-major
  std::vector<uint8_t> grid, next;
  std::vector<uint8_t> row;     // one torus-padded row (W + 2), plus slack
  std::vector<uint8_t> planes;  // (3, plane_stride): rows -1..H of the grid shifted by dx - 1
  size_t plane_stride = 0;
  uint64_t seed = 0, sim = 0;
  uint32_t noise_domain = 0;
  // Cells of the current step that draw Gumbel noise, batched (SIMD paths):
  // z = logit / T by colour (noisy_z[c * noisy_stride + k]) and cell index.
  std::vector<float> noisy_z;
  std::vector<uint32_t> noisy_cell;
  size_t noisy_stride = 0;
  int noisy_capacity = 0;

  // Builds the column-shifted planes: neighbour (dy, dx) of cell i is
  // planes[dx * plane_stride + i + dy * W] (SIMD paths).
  void build_planes();
};

class Simulator {
 public:
  explicit Simulator(const Config& cfg);
  // Initial grid of simulation `sim`; resets the step counter.
  void init(uint64_t seed, uint64_t sim, SimKind kind);
  // Start from a given grid (colours in [0, C)); noise as simulation `sim`.
  void set_grid(const uint8_t* grid, uint64_t seed, uint64_t sim, SimKind kind);
  // One step, on the instruction-set path that isa.hpp's active_isa() names.
  void step(const RuleTables& rule);
  void steps(const RuleTables& rule, int n) {
    for (int i = 0; i < n; ++i) step(rule);
  }
  // Logits of every cell of the current grid, (H, W, C).
  void logits(const RuleTables& rule, float* out) const;
  const uint8_t* grid() const { return s_.grid.data(); }

 private:
  SimState s_;
  uint32_t step_ = 0;
  bool fixed_point_ = false;  // the last step changed nothing and drew no noise
};

}  // namespace nca
