#include "ncacore/rollout.hpp"

#include <algorithm>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "ncacore/cell.hpp"
#include "ncacore/rule.hpp"

namespace nca {

namespace {
constexpr int kLanes = 8;  // cells per vector block (one AVX register of floats)
}

void RuleTables::sample(const Config& cfg, uint64_t seed, uint64_t rule_id) {
  w1.resize(cfg.conv1_size());
  w2.resize(cfg.conv2_size());
  w3.resize(cfg.conv3_size());
  const float s1 = lecun_scale(9 * cfg.conv1_in()), s2 = lecun_scale(kHidden1), s3 = lecun_scale(kHidden2);
  for (int j = 0; j < cfg.conv1_size(); ++j) w1[j] = rule_weight(seed, rule_id, 0, j, s1);
  for (int j = 0; j < cfg.conv2_size(); ++j) w2[j] = rule_weight(seed, rule_id, 1, j, s2);
  for (int j = 0; j < cfg.conv3_size(); ++j) w3[j] = rule_weight(seed, rule_id, 2, j, s3);
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
  for (int p = 0; p < 9; ++p)
    for (int c = 0; c < C; ++c)
      for (int o = 0; o < kHidden1; ++o)
        eff[(p * C + c) * kHidden1 + o] = effective_conv1(w1.data(), C, cfg.colour_wrap, p, c, o);
  w2b.resize(w2.size() * kLanes);
  for (size_t i = 0; i < w2.size(); ++i) std::fill_n(&w2b[i * kLanes], kLanes, w2[i]);
  w3b.resize(w3.size() * kLanes);
  for (size_t i = 0; i < w3.size(); ++i) std::fill_n(&w3b[i * kLanes], kLanes, w3[i]);
}

Simulator::Simulator(const Config& cfg) : cfg_(cfg) {
  const int H = cfg.height, W = cfg.width;
  nbr_.resize(size_t(H) * W * 9);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int dy = 0; dy < 3; ++dy)
        for (int dx = 0; dx < 3; ++dx)
          nbr_[(size_t(y) * W + x) * 9 + dy * 3 + dx] = ((y + dy - 1 + H) % H) * W + (x + dx - 1 + W) % W;
  grid_.resize(size_t(H) * W);
  next_.resize(size_t(H) * W);
}

void Simulator::init(uint64_t seed, uint64_t sim, SimKind kind) {
  const uint32_t mix_d = kind == SimKind::kTrain ? kTrainInitMix : kScoreInitMix;
  const uint32_t cells_d = kind == SimKind::kTrain ? kTrainInitCells : kScoreInitCells;
  float cdf[kMaxColors];
  initial_cdf(seed, mix_d, sim, cfg_.colors, cdf);
  const int N = cfg_.cells();
  for (int i = 0; i < N; i += 4) {
    const U32x4 r = draw4(seed, cells_d, sim, 0, uint32_t(i / 4));
    for (int q = 0; q < 4 && i + q < N; ++q)
      grid_[i + q] = static_cast<uint8_t>(initial_colour(cdf, cfg_.colors, r.v[q]));
  }
  seed_ = seed;
  sim_ = sim;
  noise_domain_ = kind == SimKind::kTrain ? kTrainStepNoise : kScoreStepNoise;
  step_ = 0;
}

void Simulator::set_grid(const uint8_t* grid, uint64_t seed, uint64_t sim, SimKind kind) {
  std::copy(grid, grid + cfg_.cells(), grid_.begin());
  seed_ = seed;
  sim_ = sim;
  noise_domain_ = kind == SimKind::kTrain ? kTrainStepNoise : kScoreStepNoise;
  step_ = 0;
}

void Simulator::logits(const RuleTables& rule, float* out) const {
  uint8_t nb[9];
  for (int i = 0; i < cfg_.cells(); ++i) {
    for (int p = 0; p < 9; ++p) nb[p] = grid_[nbr_[size_t(i) * 9 + p]];
    cell_logits(rule.eff.data(), rule.w2.data(), rule.w3.data(), cfg_.colors, nb, out + size_t(i) * cfg_.colors);
  }
}

// The hot loop. Per block of 8 cells: gather conv1 from the effective table,
// then conv2/ReLU/conv3 as lane-wise loops that the compiler turns into
// vector instructions (each lane keeps cell.hpp's order), then a vectorised
// top-2 search that settles almost every cell without drawing noise.
void Simulator::step(const RuleTables& rule) {
  const int C = cfg_.colors, N = cfg_.cells();
  const float T = cfg_.temperature, bias = cfg_.identity_bias;
  const float* eff = rule.eff.data();
  const float* w2b = rule.w2b.data();
  const float* w3b = rule.w3b.data();
  const uint32_t step_no = ++step_;
  alignas(32) float z[kMaxColors][kLanes];
  alignas(32) float z1[kLanes], z2[kLanes];
  alignas(32) int i1[kLanes];

  for (int base = 0; base < N; base += kLanes) {
    const int n = std::min(kLanes, N - base);
#if defined(__AVX2__) && defined(__FMA__)
    // conv1: 9 four-wide adds per cell, in position order.
    alignas(32) float t[kLanes][kHidden1];
    for (int l = 0; l < kLanes; ++l) {
      if (l >= n) {
        _mm_store_ps(t[l], _mm_setzero_ps());
        continue;
      }
      const int32_t* nb = &nbr_[size_t(base + l) * 9];
      __m128 acc = _mm_loadu_ps(eff + size_t(grid_[nb[0]]) * kHidden1);
      for (int p = 1; p < 9; ++p)
        acc = _mm_add_ps(acc, _mm_loadu_ps(eff + (size_t(p) * C + grid_[nb[p]]) * kHidden1));
      _mm_store_ps(t[l], acc);
    }
    // Transpose (8 cells x 4 channels) into 4 registers of 8 cells.
    __m256 h1v[kHidden1];
    {
      __m256 r01 = _mm256_set_m128(_mm_load_ps(t[4]), _mm_load_ps(t[0]));
      __m256 r15 = _mm256_set_m128(_mm_load_ps(t[5]), _mm_load_ps(t[1]));
      __m256 r26 = _mm256_set_m128(_mm_load_ps(t[6]), _mm_load_ps(t[2]));
      __m256 r37 = _mm256_set_m128(_mm_load_ps(t[7]), _mm_load_ps(t[3]));
      __m256 a = _mm256_unpacklo_ps(r01, r15), b = _mm256_unpackhi_ps(r01, r15);
      __m256 c = _mm256_unpacklo_ps(r26, r37), d = _mm256_unpackhi_ps(r26, r37);
      h1v[0] = _mm256_shuffle_ps(a, c, 0x44);
      h1v[1] = _mm256_shuffle_ps(a, c, 0xEE);
      h1v[2] = _mm256_shuffle_ps(b, d, 0x44);
      h1v[3] = _mm256_shuffle_ps(b, d, 0xEE);
    }
    const __m256 zero = _mm256_setzero_ps();
    __m256 h2v[kHidden2];
    for (int j = 0; j < kHidden2; ++j) {
      const float* w = w2b + j * kLanes;
      __m256 a = _mm256_mul_ps(h1v[0], _mm256_loadu_ps(w));
      for (int k = 1; k < kHidden1; ++k)
        a = _mm256_fmadd_ps(h1v[k], _mm256_loadu_ps(w + k * kHidden2 * kLanes), a);
      h2v[j] = _mm256_max_ps(a, zero);  // == (a > 0 ? a : 0), +0 for -0
    }
    for (int c = 0; c < C; ++c) {
      const float* w = w3b + c * kLanes;
      __m256 a = _mm256_mul_ps(h2v[0], _mm256_loadu_ps(w));
      for (int j = 1; j < kHidden2; ++j)
        a = _mm256_fmadd_ps(h2v[j], _mm256_loadu_ps(w + size_t(j) * C * kLanes), a);
      _mm256_store_ps(z[c], a);
    }
#else
    alignas(32) float h1[kHidden1][kLanes];
    alignas(32) float h2[kHidden2][kLanes];
    for (int l = 0; l < kLanes; ++l) {
      if (l >= n) {
        for (int o = 0; o < kHidden1; ++o) h1[o][l] = 0.0f;
        continue;
      }
      const int32_t* nb = &nbr_[size_t(base + l) * 9];
      const float* e = eff + size_t(grid_[nb[0]]) * kHidden1;
      float a0 = e[0], a1 = e[1], a2 = e[2], a3 = e[3];
      for (int p = 1; p < 9; ++p) {
        e = eff + (size_t(p) * C + grid_[nb[p]]) * kHidden1;
        a0 = a0 + e[0];
        a1 = a1 + e[1];
        a2 = a2 + e[2];
        a3 = a3 + e[3];
      }
      h1[0][l] = a0;
      h1[1][l] = a1;
      h1[2][l] = a2;
      h1[3][l] = a3;
    }
    for (int j = 0; j < kHidden2; ++j) {
      const float* w = w2b + j * kLanes;
      float a[kLanes];
      for (int l = 0; l < kLanes; ++l) a[l] = h1[0][l] * w[l];
      for (int k = 1; k < kHidden1; ++k)
        for (int l = 0; l < kLanes; ++l) a[l] = det_fma(h1[k][l], w[k * kHidden2 * kLanes + l], a[l]);
      for (int l = 0; l < kLanes; ++l) h2[j][l] = a[l] > 0.0f ? a[l] : 0.0f;
    }
    for (int c = 0; c < C; ++c) {
      const float* w = w3b + c * kLanes;
      float a[kLanes];
      for (int l = 0; l < kLanes; ++l) a[l] = h2[0][l] * w[l];
      for (int j = 1; j < kHidden2; ++j)
        for (int l = 0; l < kLanes; ++l) a[l] = det_fma(h2[j][l], w[size_t(j) * C * kLanes + l], a[l]);
      for (int l = 0; l < kLanes; ++l) z[c][l] = a[l];
    }
#endif
    if (bias != 0.0f)
      for (int l = 0; l < n; ++l) z[grid_[base + l]][l] = z[grid_[base + l]][l] + bias;

#if defined(__AVX2__) && defined(__FMA__)
    {
      const __m256 vT = _mm256_set1_ps(T);
      __m256 vz1 = _mm256_set1_ps(-3.0e38f), vz2 = vz1;
      __m256 vi1 = _mm256_setzero_ps();  // colour indices, as int bits
      for (int c = 0; c < C; ++c) {
        __m256 v = _mm256_load_ps(z[c]);
        if (T != 0.0f) {
          v = _mm256_div_ps(v, vT);
          _mm256_store_ps(z[c], v);
        }
        const __m256 gt1 = _mm256_cmp_ps(v, vz1, _CMP_GT_OQ), gt2 = _mm256_cmp_ps(v, vz2, _CMP_GT_OQ);
        vz2 = _mm256_blendv_ps(_mm256_blendv_ps(vz2, v, gt2), vz1, gt1);
        vz1 = _mm256_blendv_ps(vz1, v, gt1);
        vi1 = _mm256_blendv_ps(vi1, _mm256_castsi256_ps(_mm256_set1_epi32(c)), gt1);
      }
      _mm256_store_ps(z1, vz1);
      _mm256_store_ps(z2, vz2);
      _mm256_store_si256(reinterpret_cast<__m256i*>(i1), _mm256_castps_si256(vi1));
    }
#else
    for (int l = 0; l < kLanes; ++l) {
      z1[l] = -3.0e38f;
      z2[l] = -3.0e38f;
      i1[l] = 0;
    }
    for (int c = 0; c < C; ++c) {
      for (int l = 0; l < kLanes; ++l) {
        float v = T != 0.0f ? z[c][l] / T : z[c][l];
        z[c][l] = v;
        const bool gt1 = v > z1[l], gt2 = v > z2[l];
        z2[l] = gt1 ? z1[l] : (gt2 ? v : z2[l]);
        z1[l] = gt1 ? v : z1[l];
        i1[l] = gt1 ? c : i1[l];
      }
    }
#endif
    for (int l = 0; l < n; ++l) {
      const uint32_t cell = uint32_t(base + l);
      if (T == 0.0f || (z1[l] - z2[l] > kDecisiveGap && z1[l] < kDecisiveMax && z1[l] > -kDecisiveMax)) {
        next_[cell] = static_cast<uint8_t>(i1[l]);
        continue;
      }
      float col[kMaxColors];
      for (int c = 0; c < C; ++c) col[c] = z[c][l];
      next_[cell] = static_cast<uint8_t>(gumbel_argmax(col, C, seed_, noise_domain_, sim_, step_no, cell));
    }
  }
  grid_.swap(next_);
}

}  // namespace nca
