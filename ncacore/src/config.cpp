#include "ncacore/config.hpp"

#include <cmath>
#include <stdexcept>

#include "ncacore/text.hpp"

namespace nca {

std::string validate(const Config& c) {
  std::string e;
  auto range = [&](const std::string& name, long long v, long long lo, long long hi) {
    if (e.empty() && (v < lo || v > hi))
      e = name + "=" + num(v) + " is out of range: allowed " + num(lo) + " <= " + name + " <= " + num(hi);
  };
  if (c.height == c.width) {
    range("grid", c.height, 1, 4096);
  } else {
    range("grid height", c.height, 1, 4096);
    range("grid width", c.width, 1, 4096);
  }
  range("colors", c.colors, 2, kMaxColors);
  range("patch", c.patch, 1, 64);
  range("burn_in", c.burn_in, 0, 1 << 20);
  range("dT", c.dT, 1, 1 << 20);
  range("seq_len", c.seq_len, 1, 1 << 26);
  range("score_frames", c.score_frames, 1, 1 << 16);
  range("max_attempts", c.max_attempts, 1, 1 << 16);
  if (!e.empty()) return e;
  const std::string grid =
      c.height == c.width ? "grid=" + num(c.height) : "grid " + num(c.height) + "x" + num(c.width);
  if (c.height % c.patch != 0 || c.width % c.patch != 0)
    return grid + " is not a multiple of patch=" + num(c.patch);
  if (int64_t(c.cells()) * c.noise_blocks() >= (int64_t(1) << 32))
    return grid + " with " + num(c.colors) + " colors is too large";
  if (c.patch_vocab() + 2 > (int64_t(1) << 31))
    return "vocabulary colors**(patch*patch) + 2 = " + num(c.colors) + "**" + num(c.patch * c.patch) +
           " + 2 exceeds 2**31; use fewer colors or a smaller patch";
  if (!(c.temperature >= 0.0f) || !std::isfinite(c.temperature))
    return "temperature=" + num(c.temperature) + " is invalid: must be finite and >= 0 (0 = argmax)";
  if (c.temperature > 0.0f && c.temperature < 1e-30f)  // logits / T would overflow float32
    return "temperature=" + num(c.temperature) +
           " is below 1e-30: logits / temperature would overflow float32; use 0 for argmax";
  if (!std::isfinite(c.identity_bias)) return "identity_bias=" + num(c.identity_bias) + " must be finite";
  if (c.band && (!(c.band_lower >= 0.0 && c.band_lower <= 2.0) || !(c.band_upper >= 0.0 && c.band_upper <= 2.0) ||
                 !(c.band_lower < c.band_upper)))
    return "band=(" + num(c.band_lower) + ", " + num(c.band_upper) +
           ") is invalid: need 0 <= lower < upper <= 2 (gzip ratios)";
  return "";
}

void check(const Config& cfg) {
  std::string msg = validate(cfg);
  if (!msg.empty()) throw std::invalid_argument(msg);
}

}  // namespace nca
