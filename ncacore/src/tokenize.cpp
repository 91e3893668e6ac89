#include "ncacore/tokenize.hpp"

namespace nca {

bool decode_patches(const Config& cfg, const int64_t* tokens, uint8_t* grid) {
  const int p = cfg.patch, per_row = cfg.width / p;
  const int64_t vocab = cfg.patch_vocab();
  for (int k = 0; k < cfg.patches(); ++k) {
    int64_t t = tokens[k];
    if (t < 0 || t >= vocab) return false;
    const int y0 = (k / per_row) * p, x0 = (k % per_row) * p;
    for (int j = 0; j < p * p; ++j) {
      grid[(y0 + j / p) * cfg.width + x0 + j % p] = static_cast<uint8_t>(t % cfg.colors);
      t /= cfg.colors;
    }
  }
  return true;
}

}  // namespace nca
