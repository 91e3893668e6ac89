#include "ncacore/config.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace nca {

std::string validate(const Config& c) {
  std::ostringstream e;
  auto range = [&](const char* name, long long v, long long lo, long long hi) {
    if (e.tellp() == 0 && (v < lo || v > hi))
      e << name << "=" << v << " is out of range: allowed " << lo << " <= " << name << " <= " << hi;
  };
  range("grid height", c.height, 1, 4096);
  range("grid width", c.width, 1, 4096);
  range("colors", c.colors, 2, kMaxColors);
  range("patch", c.patch, 1, 64);
  range("burn_in", c.burn_in, 0, 1 << 20);
  range("dT", c.dT, 1, 1 << 20);
  range("seq_len", c.seq_len, 1, 1 << 26);
  range("score_frames", c.score_frames, 1, 1 << 16);
  range("max_attempts", c.max_attempts, 1, 1 << 16);
  if (e.tellp() != 0) return e.str();
  if (c.height % c.patch != 0 || c.width % c.patch != 0) {
    e << "grid " << c.height << "x" << c.width << " is not a multiple of patch=" << c.patch;
    return e.str();
  }
  if (int64_t(c.cells()) * c.noise_blocks() >= (int64_t(1) << 32)) {
    e << "grid " << c.height << "x" << c.width << " with " << c.colors << " colors is too large";
    return e.str();
  }
  if (c.patch_vocab() + 2 > (int64_t(1) << 31)) {
    e << "vocabulary colors**(patch*patch) + 2 = " << c.colors << "**" << c.patch * c.patch
      << " + 2 exceeds 2**31; use fewer colors or a smaller patch";
    return e.str();
  }
  if (!(c.temperature >= 0.0f) || !std::isfinite(c.temperature)) {
    e << "temperature=" << c.temperature << " is invalid: must be finite and >= 0 (0 = argmax)";
    return e.str();
  }
  if (c.temperature > 0.0f && c.temperature < 1e-30f) {  // logits / T would overflow float32
    e << "temperature=" << c.temperature << " is below 1e-30: logits / temperature would overflow float32; "
      << "use 0 for argmax";
    return e.str();
  }
  if (!std::isfinite(c.identity_bias)) {
    e << "identity_bias=" << c.identity_bias << " must be finite";
    return e.str();
  }
  if (c.band) {
    if (!(c.band_lower >= 0.0 && c.band_lower <= 2.0) || !(c.band_upper >= 0.0 && c.band_upper <= 2.0) ||
        !(c.band_lower < c.band_upper)) {
      e << "band=(" << c.band_lower << ", " << c.band_upper
        << ") is invalid: need 0 <= lower < upper <= 2 (gzip ratios)";
      return e.str();
    }
  }
  return "";
}

void check(const Config& cfg) {
  std::string msg = validate(cfg);
  if (!msg.empty()) throw std::invalid_argument(msg);
}

}  // namespace nca
