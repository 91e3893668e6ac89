// The per-cell arithmetic of one step, in the one operation order that both
// backends follow (the CPU core vectorises it across cells without changing
// any per-cell order; the CUDA kernels call these functions directly).
//
//   h1[o]  = eff[nb0][o] + eff[nb1][o] + ... + eff[nb8][o]   (left to right)
//   h2[j]  = relu(fma(h1[3], w2[3][j], fma(h1[2], .., fma(h1[1], .., h1[0]*w2[0][j]))))
//   l[c]   = fma(h2[15], w3[15][c], ... fma(h2[1], w3[1][c], h2[0]*w3[0][c]))
// (explicit IEEE fma, one rounding each: identical on CPU and GPU)
//   z[c]   = (l[c] + (c == current ? identity_bias : 0)) / temperature
//   next   = argmax_c z[c] + gumbel[c]   (temperature 0: argmax_c z[c])
#pragma once
#include <cstdint>

#include "ncacore/config.hpp"
#include "ncacore/detmath.hpp"
#include "ncacore/philox.hpp"

namespace nca {

// The Gumbel noise spans [-2.82, 16.64] (uniform_open's extremes), so a gap
// above 32 between the two largest z decides the argmax without drawing any
// noise; below 2^24 in magnitude float rounding cannot close that gap. This
// is exact, not an approximation: both branches return the same colour.
constexpr float kDecisiveGap = 32.0f;
constexpr float kDecisiveMax = 16777216.0f;

// Gumbel-max over z[0..C) with the noise of (domain, index, a, cell); ties go
// to the lowest colour. Colours more than kDecisiveGap below the largest z
// cannot win whatever their noise, so their draws are skipped (each colour's
// noise depends only on its own counter, so the result is unchanged).
NCA_HD int gumbel_argmax(const float* z, int colors, uint64_t seed, uint32_t domain, uint64_t index,
                         uint32_t a, uint32_t cell) {
  const uint32_t blocks = static_cast<uint32_t>((colors + 3) / 4);
  float zmax = z[0];
  for (int c = 1; c < colors; ++c) zmax = z[c] > zmax ? z[c] : zmax;
  const bool can_skip = zmax < kDecisiveMax && zmax > -kDecisiveMax;
  int best = -1;
  float best_v = 0.0f;
  for (int c0 = 0; c0 < colors; c0 += 4) {
    bool any = false;
    for (int q = 0; q < 4 && c0 + q < colors; ++q) any = any || !(can_skip && zmax - z[c0 + q] > kDecisiveGap);
    if (!any) continue;
    U32x4 r = draw4(seed, domain, index, a, cell * blocks + static_cast<uint32_t>(c0 / 4));
    for (int q = 0; q < 4 && c0 + q < colors; ++q) {
      if (can_skip && zmax - z[c0 + q] > kDecisiveGap) continue;
      float v = z[c0 + q] + gumbel_from_uniform(uniform_open(r.v[q]));
      if (best < 0 || v > best_v) {
        best_v = v;
        best = c0 + q;
      }
    }
  }
  return best;
}

// Next colour from the logits of one cell (l is scratch: overwritten with z).
// Sets *drew_noise when the colour took Gumbel noise (the CPU core's test
// for a fixed point needs to know).
NCA_HD int select_colour(float* l, int colors, int current, float identity_bias, float temperature,
                         uint64_t seed, uint32_t domain, uint64_t sim, uint32_t step, uint32_t cell,
                         bool* drew_noise = nullptr) {
  l[current] = l[current] + identity_bias;
  if (temperature == 0.0f) {
    int best = 0;
    for (int c = 1; c < colors; ++c)
      if (l[c] > l[best]) best = c;
    return best;
  }
  int i1 = 0;
  float z1 = -3.0e38f, z2 = -3.0e38f;
  for (int c = 0; c < colors; ++c) {
    float z = l[c] / temperature;
    l[c] = z;
    if (z > z1) {
      z2 = z1;
      z1 = z;
      i1 = c;
    } else if (z > z2) {
      z2 = z;
    }
  }
  if (z1 - z2 > kDecisiveGap && z1 < kDecisiveMax && z1 > -kDecisiveMax) return i1;
  if (drew_noise) *drew_noise = true;
  return gumbel_argmax(l, colors, seed, domain, sim, step, cell);
}

// Reference per-cell logits (the order above); nb[k] = colour of neighbour k
// in (dy, dx) row-major order. eff is the (9, C, 4) effective conv1 table.
NCA_HD void cell_logits(const float* eff, const float* w2, const float* w3, int colors, const uint8_t* nb,
                        float* out) {
  float h1[kHidden1];
  for (int o = 0; o < kHidden1; ++o) {
    float acc = eff[(0 * colors + nb[0]) * 4 + o];
    for (int p = 1; p < 9; ++p) acc = acc + eff[(p * colors + nb[p]) * 4 + o];
    h1[o] = acc;
  }
  float h2[kHidden2];
  for (int j = 0; j < kHidden2; ++j) {
    float a = h1[0] * w2[0 * kHidden2 + j];
    for (int k = 1; k < kHidden1; ++k) a = det_fma(h1[k], w2[k * kHidden2 + j], a);
    h2[j] = a > 0.0f ? a : 0.0f;
  }
  for (int c = 0; c < colors; ++c) {
    float a = h2[0] * w3[c];
    for (int j = 1; j < kHidden2; ++j) a = det_fma(h2[j], w3[j * colors + c], a);
    out[c] = a;
  }
}

// Initial grid (docs/nca-semantics.md): the simulation draws C colour-mix logits from
// N(0, 1); every cell then draws from softmax(mix) by inversion of one
// uniform against the running sums of exp(mix - max).
NCA_HD void initial_cdf(uint64_t seed, uint32_t mix_domain, uint64_t sim, int colors, float* cdf) {
  float mmax = -3.0e38f;
  for (int c0 = 0; c0 < colors; c0 += 4) {
    const U32x4 r = draw4(seed, mix_domain, sim, 0, static_cast<uint32_t>(c0 / 4));
    for (int c = c0; c < c0 + 4 && c < colors; ++c) {
      cdf[c] = normal_from_uniform(uniform_open(r.v[c - c0]));
      mmax = cdf[c] > mmax ? cdf[c] : mmax;
    }
  }
  float acc = 0.0f;
  for (int c = 0; c < colors; ++c) {
    acc = acc + det_exp_nonpos(cdf[c] - mmax);
    cdf[c] = acc;
  }
}

NCA_HD int initial_colour(const float* cdf, int colors, uint32_t bits) {
  const float t = uniform_open(bits) * cdf[colors - 1];
  for (int c = 0; c < colors - 1; ++c)
    if (t < cdf[c]) return c;
  return colors - 1;
}

// Uniform bits of cell `cell`'s initial draw (one 32-bit draw per cell).
NCA_HD uint32_t initial_bits(uint64_t seed, uint32_t cells_domain, uint64_t sim, uint32_t cell) {
  return draw4(seed, cells_domain, sim, 0, cell / 4).v[cell % 4];
}

}  // namespace nca
