// The generator's configuration (defaults: the paper's, docs/nca-semantics.md).
#pragma once
#include <cstdint>
#include <string>

#include "ncacore/hd.hpp"

namespace nca {

constexpr int kHidden1 = 4;   // conv1 output channels
constexpr int kHidden2 = 16;  // conv2 output channels
constexpr int kMaxColors = 256;

struct Config {
  int height = 12;
  int width = 12;
  int colors = 10;
  int patch = 2;
  int burn_in = 10;
  int dT = 1;
  float temperature = 1e-4f;
  float identity_bias = 0.0f;
  int seq_len = 1024;
  // Complexity band (strict): a rule is kept when lower < ratio < upper.
  bool band = false;
  double band_lower = 0.5;
  double band_upper = 1.0;
  // Colour-axis wrap padding of conv1's input (the published distribution);
  // false = the "clean" variant with C input channels.
  bool colour_wrap = true;
  int score_frames = 10;
  // Candidates tried per sequence before giving up on the band.
  int max_attempts = 1 << 16;

  NCA_HD int cells() const { return height * width; }
  NCA_HD int conv1_in() const { return colour_wrap ? colors + 2 : colors; }
  NCA_HD int conv1_size() const { return 9 * conv1_in() * kHidden1; }
  NCA_HD int conv2_size() const { return kHidden1 * kHidden2; }
  NCA_HD int conv3_size() const { return kHidden2 * colors; }
  NCA_HD int patches() const { return cells() / (patch * patch); }
  NCA_HD int frame_len() const { return patches() + 2; }
  // colors ** (patch * patch), saturating above 2**40 (already invalid).
  NCA_HD int64_t patch_vocab() const {
    int64_t v = 1;
    for (int j = 0; j < patch * patch && v <= (int64_t(1) << 40); ++j) v *= colors;
    return v;
  }
  NCA_HD int64_t vocab() const { return patch_vocab() + 2; }
  NCA_HD int64_t start_token() const { return patch_vocab(); }
  NCA_HD int64_t end_token() const { return patch_vocab() + 1; }
  NCA_HD int frames_per_sequence() const { return (seq_len + 1 + frame_len() - 1) / frame_len(); }
  NCA_HD int noise_blocks() const { return (colors + 3) / 4; }
};

// Empty string when valid, else a message naming the parameter, its value
// and the allowed range.
std::string validate(const Config& cfg);
// Throws std::invalid_argument with validate()'s message.
void check(const Config& cfg);

}  // namespace nca
