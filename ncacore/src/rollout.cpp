#include "ncacore/rollout.hpp"

#include <algorithm>
#include <cstring>

#include "ncacore/cell.hpp"
#include "ncacore/rule.hpp"
#include "ncacore/simd_avx2.hpp"

namespace nca {

namespace {
constexpr int kLanes = 8;   // cells per vector block (one AVX register of floats)
constexpr int kNoisyBatch = 4096;  // noisy cells held before they draw (a multiple of kLanes)
constexpr int kSlack = 32;  // bytes of slack so rows can be copied in 16-byte chunks

#if defined(NCA_HAVE_AVX2)
// cell.hpp's gumbel_argmax for eight cells at once: z holds each colour's
// z = logit / T for the cells (colour c at z[c * stride + lane]), lanes past
// `count` are ignored. Draws every block some lane needs (the draws are
// counter-based, so drawing for a lane that skips the block changes nothing)
// and keeps, per lane, the first colour with the largest z + noise among
// the colours that can win.
void gumbel_argmax8(const float* z, size_t stride, int C, const uint32_t* cells, int count, uint64_t seed,
                    uint32_t domain, uint64_t index, uint32_t step, int* out) {
  alignas(32) uint32_t cell[kLanes];
  for (int l = 0; l < kLanes; ++l) cell[l] = cells[l < count ? l : 0];
  const __m256i vcell = _mm256_load_si256(reinterpret_cast<const __m256i*>(cell));
  auto zc = [&](int c) { return _mm256_loadu_ps(z + size_t(c) * stride); };
  __m256 zmax = zc(0);
  for (int c = 1; c < C; ++c) {
    const __m256 v = zc(c);
    zmax = _mm256_blendv_ps(zmax, v, _mm256_cmp_ps(v, zmax, _CMP_GT_OQ));
  }
  const __m256 can_skip = _mm256_and_ps(_mm256_cmp_ps(zmax, _mm256_set1_ps(kDecisiveMax), _CMP_LT_OQ),
                                        _mm256_cmp_ps(zmax, _mm256_set1_ps(-kDecisiveMax), _CMP_GT_OQ));
  const __m256 gap = _mm256_set1_ps(kDecisiveGap);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const int blocks = (C + 3) / 4;
  __m256 best_v = _mm256_setzero_ps();
  __m256i best_c = _mm256_set1_epi32(-1);
  for (int b = 0; b < blocks; ++b) {
    __m256 need[4];
    int any = 0;
    for (int q = 0; q < 4 && 4 * b + q < C; ++q) {
      const __m256 skip = _mm256_and_ps(can_skip, _mm256_cmp_ps(_mm256_sub_ps(zmax, zc(4 * b + q)), gap, _CMP_GT_OQ));
      need[q] = _mm256_andnot_ps(skip, _mm256_castsi256_ps(_mm256_set1_epi32(-1)));
      any |= _mm256_movemask_ps(need[q]);
    }
    if ((any & ((1 << count) - 1)) == 0) continue;
    __m256i ctr[4] = {_mm256_set1_epi32(int(uint32_t(index))),
                      _mm256_set1_epi32(int((domain << 24) | uint32_t((index >> 32) & 0xFFFFFFu))),
                      _mm256_set1_epi32(int(step)),
                      _mm256_add_epi32(_mm256_mullo_epi32(vcell, _mm256_set1_epi32(blocks)), _mm256_set1_epi32(b))};
    avx2::philox(ctr, uint32_t(seed), uint32_t(seed >> 32));
    for (int q = 0; q < 4 && 4 * b + q < C; ++q) {
      if (_mm256_movemask_ps(need[q]) == 0) continue;
      const __m256 inner = _mm256_xor_ps(avx2::log(avx2::uniform_open(ctr[q])), sign);
      const __m256 v = _mm256_add_ps(zc(4 * b + q), _mm256_xor_ps(avx2::log(inner), sign));
      const __m256 first = _mm256_castsi256_ps(_mm256_cmpeq_epi32(best_c, _mm256_set1_epi32(-1)));
      const __m256 take = _mm256_and_ps(need[q], _mm256_or_ps(first, _mm256_cmp_ps(v, best_v, _CMP_GT_OQ)));
      best_v = _mm256_blendv_ps(best_v, v, take);
      best_c = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(best_c),
                                                    _mm256_castsi256_ps(_mm256_set1_epi32(4 * b + q)), take));
    }
  }
  alignas(32) int result[kLanes];
  _mm256_store_si256(reinterpret_cast<__m256i*>(result), best_c);
  for (int l = 0; l < count; ++l) out[l] = result[l];
}

// conv1 of eight cells by in-register table lookups (C <= 16): neighbour p's
// colours index the (p, o) row of eff16, a second table and a blend serving
// colours 8..15. Sums over p in order, as cell_logits does.
template <bool kWide>
inline void conv1_lookup(const uint8_t* planes, const size_t* plane_offset, const float* eff16, int base,
                         __m256* h1v) {
#pragma GCC unroll 9
  for (int p = 0; p < 9; ++p) {
    const uint8_t* src = planes + plane_offset[p] + base;
    const __m256i col = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src)));
    const __m256 high = _mm256_castsi256_ps(_mm256_cmpgt_epi32(col, _mm256_set1_epi32(7)));
#pragma GCC unroll 4
    for (int o = 0; o < kHidden1; ++o) {
      const float* tab = eff16 + (p * kHidden1 + o) * 16;
      __m256 v = _mm256_permutevar8x32_ps(_mm256_loadu_ps(tab), col);
      if (kWide) v = _mm256_blendv_ps(v, _mm256_permutevar8x32_ps(_mm256_loadu_ps(tab + 8), col), high);
      h1v[o] = p == 0 ? v : _mm256_add_ps(h1v[o], v);
    }
  }
}

// conv3 for colours [c0, c0 + G): G accumulators side by side so the fma
// chains overlap (one chain alone waits on fma latency). Each colour still
// sums h2[0] * w, then fma over j = 1..15 in order.
template <int G>
inline void conv3_group(const __m256* h2v, const float* w3b, int C, int c0, float (*z)[kLanes]) {
  __m256 acc[G];
  for (int g = 0; g < G; ++g) acc[g] = _mm256_mul_ps(h2v[0], _mm256_loadu_ps(&w3b[size_t(c0 + g) * kLanes]));
  for (int j = 1; j < kHidden2; ++j) {
    const __m256 h = h2v[j];
    for (int g = 0; g < G; ++g)
      acc[g] = _mm256_fmadd_ps(h, _mm256_loadu_ps(&w3b[(size_t(j) * C + c0 + g) * kLanes]), acc[g]);
  }
  for (int g = 0; g < G; ++g) _mm256_store_ps(z[c0 + g], acc[g]);
}

// Logits z[c] of eight cells, in groups of at most 10 colours.
inline void conv3(const __m256* h2v, const float* w3b, int C, float (*z)[kLanes]) {
  const int groups = (C + 9) / 10;
  for (int g = 0, c0 = 0; g < groups; ++g) {
    const int size = (C - c0) / (groups - g);
    switch (size) {
      case 1: conv3_group<1>(h2v, w3b, C, c0, z); break;
      case 2: conv3_group<2>(h2v, w3b, C, c0, z); break;
      case 3: conv3_group<3>(h2v, w3b, C, c0, z); break;
      case 4: conv3_group<4>(h2v, w3b, C, c0, z); break;
      case 5: conv3_group<5>(h2v, w3b, C, c0, z); break;
      case 6: conv3_group<6>(h2v, w3b, C, c0, z); break;
      case 7: conv3_group<7>(h2v, w3b, C, c0, z); break;
      case 8: conv3_group<8>(h2v, w3b, C, c0, z); break;
      case 9: conv3_group<9>(h2v, w3b, C, c0, z); break;
      default: conv3_group<10>(h2v, w3b, C, c0, z); break;
    }
    c0 += size;
  }
}
#endif

// All `n` weights of one layer (rule.hpp's rule_weight), in two passes over
// groups of eight Philox blocks: first all the draws, then all the
// transforms, so that consecutive groups' long dependency chains overlap.
void fill_weights(uint64_t seed, uint64_t rule_id, int layer, int n, float scale, float* out,
                  std::vector<float>& scratch) {
  const int blocks = (n + 3) / 4;
  int b = 0;
#if defined(NCA_HAVE_AVX2)
  const int groups = blocks / 8;
  scratch.resize(size_t(groups) * 32 + 8);
  float* w = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch.data()) + 31) & ~uintptr_t(31));
  const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  const __m256i c0 = _mm256_set1_epi32(int(uint32_t(rule_id)));
  const __m256i c1 = _mm256_set1_epi32(int((kRuleWeights << 24) | uint32_t((rule_id >> 32) & 0xFFFFFFu)));
  const __m256i c2 = _mm256_set1_epi32(layer);
  for (int g = 0; g < groups; ++g) {  // w[g][q][i]: draw q of block 8g + i, as bits
    __m256i c[4] = {c0, c1, c2, _mm256_add_epi32(_mm256_set1_epi32(8 * g), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))};
    avx2::philox(c, k0, k1);
    for (int q = 0; q < 4; ++q) _mm256_store_si256(reinterpret_cast<__m256i*>(w + 32 * g + 8 * q), c[q]);
  }
  const __m256 vscale = _mm256_set1_ps(scale);
  for (int k = 0; k < 4 * groups; ++k) {
    const __m256i bits = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 8 * k));
    _mm256_store_ps(w + 8 * k, _mm256_mul_ps(avx2::truncated_normal(avx2::uniform_open(bits)), vscale));
  }
  for (int g = 0; g < groups; ++g)  // weight 4 * (8g + i) + q
    for (int i = 0; i < 8; ++i)
      for (int q = 0; q < 4; ++q) {
        const int j = 4 * (8 * g + i) + q;
        if (j < n) out[j] = w[32 * g + 8 * q + i];
      }
  b = 8 * groups;
#else
  (void)scratch;
#endif
  for (int j = 4 * b; j < n; ++j) out[j] = rule_weight(seed, rule_id, layer, j, scale);
}
}  // namespace

void RuleTables::sample(const Config& cfg, uint64_t seed, uint64_t rule_id) {
  w1.resize(cfg.conv1_size());
  w2.resize(cfg.conv2_size());
  w3.resize(cfg.conv3_size());
  fill_weights(seed, rule_id, 0, cfg.conv1_size(), lecun_scale(9 * cfg.conv1_in()), w1.data(), scratch_);
  fill_weights(seed, rule_id, 1, cfg.conv2_size(), lecun_scale(kHidden1), w2.data(), scratch_);
  fill_weights(seed, rule_id, 2, cfg.conv3_size(), lecun_scale(kHidden2), w3.data(), scratch_);
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

Simulator::Simulator(const Config& cfg) : cfg_(cfg) {
  const int H = cfg.height, W = cfg.width;
  nbr_.resize(size_t(H) * W * 9);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int dy = 0; dy < 3; ++dy)
        for (int dx = 0; dx < 3; ++dx)
          nbr_[(size_t(y) * W + x) * 9 + dy * 3 + dx] = ((y + dy - 1 + H) % H) * W + (x + dx - 1 + W) % W;
  grid_.resize(size_t(H) * W + kSlack);
  next_.resize(size_t(H) * W + kSlack);
  row_.assign(size_t(W) + 2 + kSlack, 0);
  plane_stride_ = size_t(H + 2) * W + kSlack;
  planes_.assign(3 * plane_stride_, 0);
  // Capped so that big grids with many colours do not need cells x colours
  // floats per thread; a full batch is drawn early (exact: the noise only
  // writes next_, and every draw depends on its cell alone).
  noisy_capacity_ = std::min(H * W, kNoisyBatch);
  noisy_stride_ = size_t(noisy_capacity_) + kLanes;
  noisy_z_.assign(noisy_stride_ * cfg.colors, 0.0f);
  noisy_cell_.assign(noisy_stride_, 0);
}

void Simulator::init(uint64_t seed, uint64_t sim, SimKind kind) {
  const uint32_t mix_d = kind == SimKind::kTrain ? kTrainInitMix : kScoreInitMix;
  const uint32_t cells_d = kind == SimKind::kTrain ? kTrainInitCells : kScoreInitCells;
  float cdf[kMaxColors];
  initial_cdf(seed, mix_d, sim, cfg_.colors, cdf);
  const int N = cfg_.cells();
  int i = 0;
#if defined(NCA_HAVE_AVX2)
  // 32 cells per round: eight Philox blocks side by side, then each cell's
  // colour as the count of cdf entries at or below its threshold (the first
  // c with t < cdf[c], cdf being nondecreasing).
  const __m256 total = _mm256_set1_ps(cdf[cfg_.colors - 1]);
  for (; i + 32 <= N; i += 32) {
    __m256i c[4] = {_mm256_set1_epi32(int(uint32_t(sim))),
                    _mm256_set1_epi32(int((cells_d << 24) | uint32_t((sim >> 32) & 0xFFFFFFu))),
                    _mm256_setzero_si256(),
                    _mm256_add_epi32(_mm256_set1_epi32(i / 4), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))};
    avx2::philox(c, uint32_t(seed), uint32_t(seed >> 32));
    alignas(32) int32_t colour[4][8];
    for (int q = 0; q < 4; ++q) {
      const __m256 t = _mm256_mul_ps(avx2::uniform_open(c[q]), total);
      __m256i count = _mm256_setzero_si256();
      for (int k = 0; k < cfg_.colors - 1; ++k)  // + (t >= cdf[k]): a true compare is -1
        count = _mm256_sub_epi32(count, _mm256_castps_si256(_mm256_cmp_ps(t, _mm256_set1_ps(cdf[k]), _CMP_NLT_UQ)));
      _mm256_store_si256(reinterpret_cast<__m256i*>(colour[q]), count);
    }
    for (int b = 0; b < 8; ++b)
      for (int q = 0; q < 4; ++q) grid_[i + 4 * b + q] = static_cast<uint8_t>(colour[q][b]);
  }
#endif
  for (; i < N; i += 4) {
    const U32x4 r = draw4(seed, cells_d, sim, 0, uint32_t(i / 4));
    for (int q = 0; q < 4 && i + q < N; ++q)
      grid_[i + q] = static_cast<uint8_t>(initial_colour(cdf, cfg_.colors, r.v[q]));
  }
  seed_ = seed;
  sim_ = sim;
  noise_domain_ = kind == SimKind::kTrain ? kTrainStepNoise : kScoreStepNoise;
  step_ = 0;
  fixed_point_ = false;
}

void Simulator::set_grid(const uint8_t* grid, uint64_t seed, uint64_t sim, SimKind kind) {
  std::copy(grid, grid + cfg_.cells(), grid_.begin());
  seed_ = seed;
  sim_ = sim;
  noise_domain_ = kind == SimKind::kTrain ? kTrainStepNoise : kScoreStepNoise;
  step_ = 0;
  fixed_point_ = false;
}

void Simulator::logits(const RuleTables& rule, float* out) const {
  uint8_t nb[9];
  for (int i = 0; i < cfg_.cells(); ++i) {
    for (int p = 0; p < 9; ++p) nb[p] = grid_[nbr_[size_t(i) * 9 + p]];
    cell_logits(rule.eff.data(), rule.w2.data(), rule.w3.data(), cfg_.colors, nb, out + size_t(i) * cfg_.colors);
  }
}

// Row copies in 16-byte chunks: the overshoot lands in the next row (which is
// written afterwards) or in the slack.
static inline void copy_row(uint8_t* dst, const uint8_t* src, int n) {
  for (int x = 0; x < n; x += 16) std::memcpy(dst + x, src + x, 16);
}

void Simulator::build_planes() {
  const int H = cfg_.height, W = cfg_.width;
  uint8_t* row = row_.data();
  for (int r = 0; r < H + 2; ++r) {
    const uint8_t* src = &grid_[size_t((r - 1 + H) % H) * W];
    copy_row(row + 1, src, W);
    row[0] = src[W - 1];
    row[W + 1] = src[0];
    for (int dx = 0; dx < 3; ++dx) copy_row(&planes_[dx * plane_stride_ + size_t(r) * W], row + dx, W);
  }
}

// The hot loop. Per block of 8 cells: conv1 from the effective table (by
// in-register table lookups when C <= 16), conv2/ReLU/conv3 as fma chains,
// then a top-2 search on the raw logits that settles almost every cell
// without drawing noise (cell.hpp's select_colour, reordered exactly: x / T
// is monotone, so the two largest z are the two largest logits divided by T).
#if defined(NCA_HAVE_AVX2)
// Draws the first `pending` batched noisy cells, eight side by side, into next_.
void Simulator::draw_noisy(int pending, uint32_t step_no) {
  for (int k = 0; k < pending; k += kLanes) {
    alignas(32) int colour[kLanes];
    gumbel_argmax8(&noisy_z_[k], noisy_stride_, cfg_.colors, &noisy_cell_[k], std::min(kLanes, pending - k), seed_,
                   noise_domain_, sim_, step_no, colour);
    for (int l = 0; l < std::min(kLanes, pending - k); ++l) next_[noisy_cell_[k + l]] = uint8_t(colour[l]);
  }
}
#endif

void Simulator::step(const RuleTables& rule) {
  const int C = cfg_.colors, N = cfg_.cells();
  const float T = cfg_.temperature, bias = cfg_.identity_bias;
  const uint32_t step_no = ++step_;
  // A grid that the last step left unchanged without drawing noise is a fixed
  // point: the same grid gives the same logits, the same decisive cells and
  // so the same next grid. (About 8% of scoring steps at the paper's settings.)
  if (fixed_point_) return;
  int pending = 0;  // noisy cells of this step so far (AVX2 path)
  bool drew_noise = false;
  alignas(32) float z[kMaxColors][kLanes];
  alignas(32) float z1[kLanes], z2[kLanes];
  alignas(32) int i1[kLanes];
#if defined(NCA_HAVE_AVX2)
  const bool lookup = C <= 16;
  if (lookup) build_planes();
#endif

#if defined(NCA_HAVE_AVX2)
  size_t plane_offset[9];  // where neighbour p of cell 0 sits in planes_
  for (int p = 0; p < 9; ++p) plane_offset[p] = (p % 3) * plane_stride_ + size_t(p / 3) * cfg_.width;
#endif
  for (int base = 0; base < N; base += kLanes) {
    const int n = std::min(kLanes, N - base);
#if defined(NCA_HAVE_AVX2)
    __m256 h1v[kHidden1];
    if (lookup) {
      if (C > 8)
        conv1_lookup<true>(planes_.data(), plane_offset, rule.eff16.data(), base, h1v);
      else
        conv1_lookup<false>(planes_.data(), plane_offset, rule.eff16.data(), base, h1v);
    } else {
      alignas(32) float t[kLanes][kHidden1];
      for (int l = 0; l < kLanes; ++l) {
        const int32_t* nb = &nbr_[size_t(std::min(base + l, N - 1)) * 9];
        __m128 acc = _mm_loadu_ps(&rule.eff[size_t(grid_[nb[0]]) * kHidden1]);
        for (int p = 1; p < 9; ++p)
          acc = _mm_add_ps(acc, _mm_loadu_ps(&rule.eff[(size_t(p) * C + grid_[nb[p]]) * kHidden1]));
        _mm_store_ps(t[l], acc);
      }
      for (int o = 0; o < kHidden1; ++o)
        h1v[o] = _mm256_setr_ps(t[0][o], t[1][o], t[2][o], t[3][o], t[4][o], t[5][o], t[6][o], t[7][o]);
    }
    const __m256 zero = _mm256_setzero_ps();
    __m256 h2v[kHidden2];
    for (int j = 0; j < kHidden2; ++j) {
      const float* w = &rule.w2b[j * kLanes];
      __m256 a = _mm256_mul_ps(h1v[0], _mm256_loadu_ps(w));
      for (int k = 1; k < kHidden1; ++k) a = _mm256_fmadd_ps(h1v[k], _mm256_loadu_ps(w + k * kHidden2 * kLanes), a);
      h2v[j] = _mm256_max_ps(a, zero);  // == (a > 0 ? a : 0), +0 for -0
    }
    conv3(h2v, rule.w3b.data(), C, z);
#else
    float h1[kHidden1][kLanes], h2[kHidden2][kLanes];
    for (int l = 0; l < kLanes; ++l) {
      const int32_t* nb = &nbr_[size_t(std::min(base + l, N - 1)) * 9];
      for (int o = 0; o < kHidden1; ++o) {
        float a = rule.eff[size_t(grid_[nb[0]]) * kHidden1 + o];
        for (int p = 1; p < 9; ++p) a = a + rule.eff[(size_t(p) * C + grid_[nb[p]]) * kHidden1 + o];
        h1[o][l] = a;
      }
    }
    for (int j = 0; j < kHidden2; ++j)
      for (int l = 0; l < kLanes; ++l) {
        float a = h1[0][l] * rule.w2[j];
        for (int k = 1; k < kHidden1; ++k) a = det_fma(h1[k][l], rule.w2[k * kHidden2 + j], a);
        h2[j][l] = a > 0.0f ? a : 0.0f;
      }
    for (int c = 0; c < C; ++c)
      for (int l = 0; l < kLanes; ++l) {
        float a = h2[0][l] * rule.w3[c];
        for (int j = 1; j < kHidden2; ++j) a = det_fma(h2[j][l], rule.w3[j * C + c], a);
        z[c][l] = a;
      }
#endif
    if (bias != 0.0f)
      for (int l = 0; l < n; ++l) z[grid_[base + l]][l] = z[grid_[base + l]][l] + bias;

#if defined(NCA_HAVE_AVX2)
    {
      __m256 vz1 = _mm256_set1_ps(-3.0e38f), vz2 = vz1;
      __m256 vi1 = _mm256_setzero_ps();  // colour indices, as int bits
      for (int c = 0; c < C; ++c) {
        const __m256 v = _mm256_load_ps(z[c]);
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
    for (int c = 0; c < C; ++c)
      for (int l = 0; l < kLanes; ++l) {
        const float v = z[c][l];
        const bool gt1 = v > z1[l], gt2 = v > z2[l];
        z2[l] = gt1 ? z1[l] : (gt2 ? v : z2[l]);
        z1[l] = gt1 ? v : z1[l];
        i1[l] = gt1 ? c : i1[l];
      }
#endif
    // Lanes whose top-2 gap (in z = logit / T units) is decisive take the top
    // colour; the rest draw Gumbel noise.
    unsigned noisy = 0;
    if (T != 0.0f) {
#if defined(NCA_HAVE_AVX2)
      const __m256 vT = _mm256_set1_ps(T);
      const __m256 a = _mm256_div_ps(_mm256_load_ps(z1), vT), b = _mm256_div_ps(_mm256_load_ps(z2), vT);
      const __m256 ok = _mm256_and_ps(
          _mm256_cmp_ps(_mm256_sub_ps(a, b), _mm256_set1_ps(kDecisiveGap), _CMP_GT_OQ),
          _mm256_and_ps(_mm256_cmp_ps(a, _mm256_set1_ps(kDecisiveMax), _CMP_LT_OQ),
                        _mm256_cmp_ps(a, _mm256_set1_ps(-kDecisiveMax), _CMP_GT_OQ)));
      noisy = ~unsigned(_mm256_movemask_ps(ok)) & ((1u << n) - 1u);
#else
      for (int l = 0; l < n; ++l) {
        const float a = z1[l] / T, b = z2[l] / T;
        if (!(a - b > kDecisiveGap && a < kDecisiveMax && a > -kDecisiveMax)) noisy |= 1u << l;
      }
#endif
    }
    for (int l = 0; l < n; ++l) next_[base + l] = static_cast<uint8_t>(i1[l]);
#if defined(NCA_HAVE_AVX2)
    // Noisy cells wait for the end of the step and then draw eight at a time:
    // one cell's draws are a long latency chain, eight side by side are not.
    if (noisy) {
      if (pending + n > noisy_capacity_) {
        draw_noisy(pending, step_no);
        drew_noise = true;
        pending = 0;
      }
      const __m256 vT = _mm256_set1_ps(T);
      alignas(32) float zt[kLanes];
      for (int c = 0; c < C; ++c) {
        _mm256_store_ps(zt, _mm256_div_ps(_mm256_load_ps(z[c]), vT));
        int k = pending;
        for (unsigned m = noisy; m; m &= m - 1) noisy_z_[size_t(c) * noisy_stride_ + k++] = zt[__builtin_ctz(m)];
      }
      for (unsigned m = noisy; m; m &= m - 1) noisy_cell_[pending++] = uint32_t(base + __builtin_ctz(m));
    }
#else
    drew_noise = drew_noise || noisy != 0;
    for (; noisy; noisy &= noisy - 1) {
      const int l = __builtin_ctz(noisy);
      const uint32_t cell = uint32_t(base + l);
      float col[kMaxColors];
      for (int c = 0; c < C; ++c) col[c] = z[c][l] / T;
      next_[cell] = static_cast<uint8_t>(gumbel_argmax(col, C, seed_, noise_domain_, sim_, step_no, cell));
    }
#endif
  }
#if defined(NCA_HAVE_AVX2)
  draw_noisy(pending, step_no);
  drew_noise = drew_noise || pending > 0;
#endif
  fixed_point_ = !drew_noise && std::memcmp(grid_.data(), next_.data(), size_t(N)) == 0;
  grid_.swap(next_);
}

}  // namespace nca
