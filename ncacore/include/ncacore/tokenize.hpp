// Patch tokenization and framing (docs/nca-semantics.md "Tokens"). Header-only loops
// shared with the CUDA kernels; outputs go to caller-provided buffers.
#pragma once
#include <cstdint>

#include "ncacore/config.hpp"
#include "ncacore/hd.hpp"

namespace nca {

// Token of patch `k` (row-major over patches): digit j = r*p + c of the patch
// is the colour at (r, c); token = sum_j colour_j * C**j.
NCA_HD int64_t patch_token(const uint8_t* grid, int width, int colors, int patch, int k) {
  const int per_row = width / patch;
  const int y0 = (k / per_row) * patch, x0 = (k % per_row) * patch;
  if (patch == 2) {  // the default, spelled out: four digits, no loops
    const uint8_t* r0 = grid + y0 * width + x0;
    const uint8_t* r1 = r0 + width;
    const int64_t C = colors;
    return r0[0] + C * (r0[1] + C * (r1[0] + C * int64_t(r1[1])));
  }
  int64_t t = 0;
  for (int r = patch - 1; r >= 0; --r) {
    const uint8_t* row = grid + (y0 + r) * width + x0;
    for (int c = patch - 1; c >= 0; --c) t = t * colors + row[c];
  }
  return t;
}

// Token i of a frame [START, t_1 .. t_N, END] (0 <= i < frame_len).
NCA_HD int64_t frame_token(const Config& cfg, const uint8_t* grid, int i) {
  if (i == 0) return cfg.start_token();
  if (i == cfg.frame_len() - 1) return cfg.end_token();
  return patch_token(grid, cfg.width, cfg.colors, cfg.patch, i - 1);
}

// Writes frame tokens starting at frame offset `from`, at most `count` of
// them, into out. Returns the number written.
template <typename T>
NCA_HD int write_frame(const Config& cfg, const uint8_t* grid, int from, int count, T* out) {
  const int len = cfg.frame_len();
  int w = 0;
  for (int i = from; i < len && w < count; ++i, ++w) out[w] = static_cast<T>(frame_token(cfg, grid, i));
  return w;
}

// Patch tokens of a grid without START/END (as the complexity score uses).
template <typename T>
NCA_HD void write_patches(const Config& cfg, const uint8_t* grid, T* out) {
  for (int k = 0; k < cfg.patches(); ++k) out[k] = static_cast<T>(patch_token(grid, cfg.width, cfg.colors, cfg.patch, k));
}

// Grid from N patch tokens; returns false on a token outside [0, C**(p*p)).
bool decode_patches(const Config& cfg, const int64_t* tokens, uint8_t* grid);

}  // namespace nca
