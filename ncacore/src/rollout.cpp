#include "ncacore/rollout.hpp"

#include <algorithm>
#include <cstring>

#include "kernels.hpp"
#include "ncacore/cell.hpp"
#include "ncacore/rule.hpp"

namespace nca {

void RuleTables::sample(const Config& cfg, uint64_t seed, uint64_t rule_id) {
  const Kernels& k = kernels();
  const int n[3] = {cfg.conv1_size(), cfg.conv2_size(), cfg.conv3_size()};
  const float scale[3] = {lecun_scale(9 * cfg.conv1_in()), lecun_scale(kHidden1), lecun_scale(kHidden2)};
  std::vector<float>* w[3] = {&w1, &w2, &w3};
  scratch_.resize(weight_scratch(*std::max_element(n, n + 3)));
  for (int layer = 0; layer < 3; ++layer) {
    w[layer]->resize(n[layer]);
    k.fill_weights(seed, rule_id, layer, n[layer], scale[layer], w[layer]->data(), scratch_.data());
  }
  derive(cfg);
}

void RuleTables::set(const Config& cfg, const float* a, const float* b, const float* c) {
  w1.assign(a, a + cfg.conv1_size());
  w2.assign(b, b + cfg.conv2_size());
  w3.assign(c, c + cfg.conv3_size());
  derive(cfg);
}

void RuleTables::derive(const Config& cfg) {
  const int C = cfg.colors;
  eff.resize(9 * C * kHidden1);
  eff16.assign(9 * kHidden1 * 16, 0.0f);
  for (int p = 0; p < 9; ++p)
    for (int c = 0; c < C; ++c)
      for (int o = 0; o < kHidden1; ++o) {
        const float v = effective_conv1(w1.data(), C, cfg.colour_wrap, p, c, o);
        eff[(p * C + c) * kHidden1 + o] = v;
        if (c < 16) eff16[(p * kHidden1 + o) * 16 + c] = v;
      }
  w2b.resize(w2.size() * kLanes);
  for (size_t i = 0; i < w2.size(); ++i) std::fill_n(&w2b[i * kLanes], kLanes, w2[i]);
  w3b.resize(w3.size() * kLanes);
  for (size_t i = 0; i < w3.size(); ++i) std::fill_n(&w3b[i * kLanes], kLanes, w3[i]);
}

Simulator::Simulator(const Config& cfg) {
  s_.cfg = cfg;
  const int H = cfg.height, W = cfg.width;
  s_.nbr.resize(size_t(H) * W * 9);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int dy = 0; dy < 3; ++dy)
        for (int dx = 0; dx < 3; ++dx)
          s_.nbr[(size_t(y) * W + x) * 9 + dy * 3 + dx] = ((y + dy - 1 + H) % H) * W + (x + dx - 1 + W) % W;
  s_.grid.resize(size_t(H) * W + kSlack);
  s_.next.resize(size_t(H) * W + kSlack);
  s_.row.assign(size_t(W) + 2 + kSlack, 0);
  s_.plane_stride = size_t(H + 2) * W + kSlack;
  s_.planes.assign(3 * s_.plane_stride, 0);
  // Capped so that big grids with many colours do not need cells x colours
  // floats per thread; a full batch is drawn early (exact: the noise only
  // writes next, and every draw depends on its cell alone).
  s_.noisy_capacity = std::min(H * W, kNoisyBatch);
  s_.noisy_stride = size_t(s_.noisy_capacity) + kLanes;
  s_.noisy_z.assign(s_.noisy_stride * cfg.colors, 0.0f);
  s_.noisy_cell.assign(s_.noisy_stride, 0);
}

void Simulator::init(uint64_t seed, uint64_t sim, SimKind kind) {
  const uint32_t mix_d = kind == SimKind::kTrain ? kTrainInitMix : kScoreInitMix;
  const uint32_t cells_d = kind == SimKind::kTrain ? kTrainInitCells : kScoreInitCells;
  float cdf[kMaxColors];
  initial_cdf(seed, mix_d, sim, s_.cfg.colors, cdf);
  kernels().init_cells(cdf, s_.cfg.colors, seed, cells_d, sim, s_.cfg.cells(), s_.grid.data());
  s_.seed = seed;
  s_.sim = sim;
  s_.noise_domain = kind == SimKind::kTrain ? kTrainStepNoise : kScoreStepNoise;
  step_ = 0;
  fixed_point_ = false;
}

void Simulator::set_grid(const uint8_t* grid, uint64_t seed, uint64_t sim, SimKind kind) {
  std::copy(grid, grid + s_.cfg.cells(), s_.grid.begin());
  s_.seed = seed;
  s_.sim = sim;
  s_.noise_domain = kind == SimKind::kTrain ? kTrainStepNoise : kScoreStepNoise;
  step_ = 0;
  fixed_point_ = false;
}

void Simulator::logits(const RuleTables& rule, float* out) const {
  uint8_t nb[9];
  for (int i = 0; i < s_.cfg.cells(); ++i) {
    for (int p = 0; p < 9; ++p) nb[p] = s_.grid[s_.nbr[size_t(i) * 9 + p]];
    cell_logits(rule.eff.data(), rule.w2.data(), rule.w3.data(), s_.cfg.colors, nb, out + size_t(i) * s_.cfg.colors);
  }
}

// Row copies in 16-byte chunks: the overshoot lands in the next row (which is
// written afterwards) or in the slack.
static inline void copy_row(uint8_t* dst, const uint8_t* src, int n) {
  for (int x = 0; x < n; x += 16) std::memcpy(dst + x, src + x, 16);
}

void SimState::build_planes() {
  const int H = cfg.height, W = cfg.width;
  uint8_t* r = row.data();
  for (int y = 0; y < H + 2; ++y) {
    const uint8_t* src = &grid[size_t((y - 1 + H) % H) * W];
    copy_row(r + 1, src, W);
    r[0] = src[W - 1];
    r[W + 1] = src[0];
    for (int dx = 0; dx < 3; ++dx) copy_row(&planes[dx * plane_stride + size_t(y) * W], r + dx, W);
  }
}

void Simulator::step(const RuleTables& rule) {
  const uint32_t step_no = ++step_;
  // A grid that the last step left unchanged without drawing noise is a fixed
  // point: the same grid gives the same logits, the same decisive cells and
  // so the same next grid. (About 8% of scoring steps at the paper's settings.)
  if (fixed_point_) return;
  const bool drew_noise = kernels().step(s_, rule, step_no);
  fixed_point_ = !drew_noise && std::memcmp(s_.grid.data(), s_.next.data(), size_t(s_.cfg.cells())) == 0;
  s_.grid.swap(s_.next);
}

}  // namespace nca
