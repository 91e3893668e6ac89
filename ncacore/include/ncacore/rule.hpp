// Rule sampling: one random 3-layer network per rule (docs/nca-semantics.md "A rule").
// Header-only so the CUDA kernels sample exactly the same weights.
//
// Layouts (row-major, as the reference's kernels):
//   conv1 [dy][dx][in_channel][4], dy, dx = 0..2 for offsets -1..+1
//   conv2 [4][16], conv3 [16][C]
// Element j of layer l is lane j % 4 of draw4(seed, kRuleWeights, rule, l, j / 4).
#pragma once
#include <cstdint>

#include "ncacore/config.hpp"
#include "ncacore/detmath.hpp"
#include "ncacore/philox.hpp"

namespace nca {

// sqrt(1 / fan_in) / stddev of the standard normal truncated to [-2, 2]
// (Flax's lecun_normal), in double so host and device agree exactly.
NCA_HD float lecun_scale(int fan_in) {
  return static_cast<float>(1.0 / sqrt(static_cast<double>(fan_in)) / 0.87962566103423978);
}

// Weight `j` of `layer` (0, 1, 2) of rule `rule_id`.
NCA_HD float rule_weight(uint64_t seed, uint64_t rule_id, int layer, int j, float scale) {
  U32x4 r = draw4(seed, kRuleWeights, rule_id, static_cast<uint32_t>(layer), static_cast<uint32_t>(j / 4));
  return truncated_normal_from_uniform(uniform_open(r.v[j % 4])) * scale;
}

// Effective conv1 entry for (position, colour, out): with colour-axis wrap,
// channel c+1 holds colour c, channel 0 holds colour C-1 and channel C+1
// holds colour 0, so colours 0 and C-1 collect two weight slices.
NCA_HD float effective_conv1(const float* w1, int colors, bool colour_wrap, int pos, int c, int o) {
  if (!colour_wrap) return w1[(pos * colors + c) * 4 + o];
  const int in = colors + 2;
  const float* slice = w1 + pos * in * 4;
  float v = slice[(c + 1) * 4 + o];
  if (c == 0) v = v + slice[(colors + 1) * 4 + o];
  if (c == colors - 1) v = v + slice[0 * 4 + o];
  return v;
}

}  // namespace nca
