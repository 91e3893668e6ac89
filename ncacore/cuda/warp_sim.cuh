// One NCA simulation run by one warp, built from the shared NCA_HD functions
// (rule.hpp, cell.hpp, tokenize.hpp) so that every value equals the CPU
// core's bit for bit. The CPU reference is ncacore/src/rollout.cpp.
//
// Each lane owns the cells lane, lane + 32, ...; a step evaluates KC of them
// at a time so that each weight read from shared memory (a broadcast) feeds
// KC fma chains. The grid is double-buffered in shared memory.
#pragma once
#include <cstdint>

#include "ncacore/cell.hpp"
#include "ncacore/config.hpp"
#include "ncacore/rule.hpp"
#include "ncacore/tokenize.hpp"
#include "ncacuda/kernels.hpp"

namespace ncacuda {

constexpr int kWarp = 32;
constexpr int kMaxCellsPerLane = 5;  // KC; more spills the h2 registers

// KC for a grid: the fewest passes of at most kMaxCellsPerLane cells per lane.
__host__ __device__ inline int cells_per_lane(int cells) {
  const int per_lane = (cells + kWarp - 1) / kWarp;
  const int passes = (per_lane + kMaxCellsPerLane - 1) / kMaxCellsPerLane;
  return (per_lane + passes - 1) / passes;
}

// Byte offsets of one warp's shared-memory slice; all 16-byte aligned.
struct WarpLayout {
  int eff, w2, w3, w3t, w1, cdf, queue, grid0, grid1, total;
};

__host__ __device__ inline int align16(int bytes) { return (bytes + 15) & ~15; }

__host__ __device__ inline WarpLayout warp_layout(const nca::Config& cfg) {
  const int C = cfg.colors;
  WarpLayout L;
  int at = 0;
  L.eff = at;   at += align16(9 * C * nca::kHidden1 * 4);   // (9, C, 4) effective conv1
  L.w2 = at;    at += align16(cfg.conv2_size() * 4);        // [4][16]
  L.w3 = at;    at += align16(cfg.conv3_size() * 4);        // [16][C], cell_logits' layout
  L.w3t = at;   at += align16(cfg.conv3_size() * 4);        // [C][16], float4 reads in the hot loop
  L.w1 = at;    at += align16(cfg.conv1_size() * 4);        // raw conv1, only to build eff
  L.cdf = at;   at += align16(C * 4);
  L.queue = at; at += align16(kWarp * kMaxCellsPerLane * 4);  // near-tie cells of one pass
  L.grid0 = at; at += align16(cfg.cells());
  L.grid1 = at; at += align16(cfg.cells());
  L.total = at;
  return L;
}

// The rule's three layers (rule.hpp's rule_weight, element by element) and
// the tables derived from them.
__device__ inline void load_rule(const nca::Config& cfg, uint64_t seed, uint64_t rule, unsigned char* base,
                                 const WarpLayout& L, int lane) {
  float* w1 = reinterpret_cast<float*>(base + L.w1);
  float* w2 = reinterpret_cast<float*>(base + L.w2);
  float* w3 = reinterpret_cast<float*>(base + L.w3);
  float* w3t = reinterpret_cast<float*>(base + L.w3t);
  float* eff = reinterpret_cast<float*>(base + L.eff);
  const int C = cfg.colors, n1 = cfg.conv1_size(), n2 = cfg.conv2_size(), n3 = cfg.conv3_size();
  const float s1 = nca::lecun_scale(9 * cfg.conv1_in());
  const float s2 = nca::lecun_scale(nca::kHidden1);
  const float s3 = nca::lecun_scale(nca::kHidden2);
  for (int j = lane; j < n1; j += kWarp) w1[j] = nca::rule_weight(seed, rule, 0, j, s1);
  for (int j = lane; j < n2; j += kWarp) w2[j] = nca::rule_weight(seed, rule, 1, j, s2);
  for (int j = lane; j < n3; j += kWarp) {
    const float v = nca::rule_weight(seed, rule, 2, j, s3);
    w3[j] = v;
    w3t[(j % C) * nca::kHidden2 + j / C] = v;
  }
  __syncwarp();
  for (int i = lane; i < 9 * C * nca::kHidden1; i += kWarp) {
    const int p = i / (C * nca::kHidden1), c = (i / nca::kHidden1) % C, o = i % nca::kHidden1;
    eff[i] = nca::effective_conv1(w1, C, cfg.colour_wrap, p, c, o);
  }
  __syncwarp();
}

// Initial grid (cell.hpp's initial_cdf / initial_colour / initial_bits).
__device__ inline void init_grid(const nca::Config& cfg, uint64_t seed, uint32_t mix_domain, uint32_t cells_domain,
                                 uint64_t sim, float* cdf, uint8_t* grid, int lane) {
  if (lane == 0) nca::initial_cdf(seed, mix_domain, sim, cfg.colors, cdf);
  __syncwarp();
  for (int cell = lane; cell < cfg.cells(); cell += kWarp)
    grid[cell] = static_cast<uint8_t>(
        nca::initial_colour(cdf, cfg.colors, nca::initial_bits(seed, cells_domain, sim, static_cast<uint32_t>(cell))));
  __syncwarp();
}

// Torus neighbourhood of a cell in cell_logits' (dy, dx) row-major order.
struct Neighbourhood {
  int row[3], col[3];
  __device__ Neighbourhood(int cell, int H, int W) {
    const int y = cell / W, x = cell - y * W;
    row[0] = (y == 0 ? H - 1 : y - 1) * W;
    row[1] = y * W;
    row[2] = (y == H - 1 ? 0 : y + 1) * W;
    col[0] = x == 0 ? W - 1 : x - 1;
    col[1] = x;
    col[2] = x == W - 1 ? 0 : x + 1;
  }
  __device__ int at(int p) const { return row[p / 3] + col[p % 3]; }
};

// The rare cell whose two best z are close: recompute its logits with the
// reference function and sample with the reference function. Out of line so
// its logit array stays out of the hot loop's registers.
__device__ __noinline__ int select_slow(const nca::Config& cfg, const float* eff, const float* w2, const float* w3,
                                        const uint8_t* grid, int cell, uint64_t seed, uint32_t noise_domain,
                                        uint64_t sim, uint32_t step) {
  const Neighbourhood nbh(cell, cfg.height, cfg.width);
  uint8_t nb[9];
  for (int p = 0; p < 9; ++p) nb[p] = grid[nbh.at(p)];
  float l[nca::kMaxColors];
  nca::cell_logits(eff, w2, w3, cfg.colors, nb, l);
  return nca::select_colour(l, cfg.colors, grid[cell], cfg.identity_bias, cfg.temperature, seed, noise_domain, sim,
                            step, static_cast<uint32_t>(cell));
}

// One step from `grid` into `next` (step numbers start at 1). The order of
// every float operation is cell.hpp's; the top-2 search on the raw logits
// and the decisive-gap test are rollout.cpp's exact reordering of
// select_colour (x / T is monotone, so the two largest z are the two
// largest logits divided by T).
template <int KC>
__device__ void step(const nca::Config& cfg, unsigned char* base, const WarpLayout& L, const uint8_t* grid,
                     uint8_t* next, uint64_t seed, uint32_t noise_domain, uint64_t sim, uint32_t step_no, int lane) {
  using nca::kHidden1;
  using nca::kHidden2;
  const float4* eff4 = reinterpret_cast<const float4*>(base + L.eff);
  const float* eff = reinterpret_cast<const float*>(base + L.eff);
  const float* w2 = reinterpret_cast<const float*>(base + L.w2);
  const float* w3 = reinterpret_cast<const float*>(base + L.w3);
  const float* w3t = reinterpret_cast<const float*>(base + L.w3t);
  int* queue = reinterpret_cast<int*>(base + L.queue);
  const int H = cfg.height, W = cfg.width, C = cfg.colors, N = H * W;
  const float T = cfg.temperature, bias = cfg.identity_bias;

  for (int first = 0; first < N; first += kWarp * KC) {
    float h2[KC][kHidden2];
    int cur[KC];
#pragma unroll
    for (int k = 0; k < KC; ++k) {
      const int cell = min(first + k * kWarp + lane, N - 1);  // lanes past the end compute a duplicate
      const Neighbourhood nbh(cell, H, W);
      float4 h1 = eff4[grid[nbh.at(0)]];
#pragma unroll
      for (int p = 1; p < 9; ++p) {
        const float4 v = eff4[p * C + grid[nbh.at(p)]];
        h1.x = h1.x + v.x;
        h1.y = h1.y + v.y;
        h1.z = h1.z + v.z;
        h1.w = h1.w + v.w;
      }
      cur[k] = grid[cell];
#pragma unroll
      for (int j = 0; j < kHidden2; ++j) {
        float a = h1.x * w2[0 * kHidden2 + j];
        a = nca::det_fma(h1.y, w2[1 * kHidden2 + j], a);
        a = nca::det_fma(h1.z, w2[2 * kHidden2 + j], a);
        a = nca::det_fma(h1.w, w2[3 * kHidden2 + j], a);
        h2[k][j] = a > 0.0f ? a : 0.0f;
      }
    }
    static_assert(kHidden1 == 4 && kHidden2 == 16, "the hot loop is unrolled for 4 and 16 hidden channels");

    float z1[KC], z2[KC];
    int i1[KC];
#pragma unroll
    for (int k = 0; k < KC; ++k) {
      z1[k] = -3.0e38f;
      z2[k] = -3.0e38f;
      i1[k] = 0;
    }
    for (int c = 0; c < C; ++c) {
      const float4* wc = reinterpret_cast<const float4*>(w3t + c * kHidden2);
      const float4 q0 = wc[0], q1 = wc[1], q2 = wc[2], q3 = wc[3];
      const float w[kHidden2] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w,
                                 q2.x, q2.y, q2.z, q2.w, q3.x, q3.y, q3.z, q3.w};
#pragma unroll
      for (int k = 0; k < KC; ++k) {
        float a = h2[k][0] * w[0];
#pragma unroll
        for (int j = 1; j < kHidden2; ++j) a = nca::det_fma(h2[k][j], w[j], a);
        if (bias != 0.0f && c == cur[k]) a = a + bias;
        const bool gt1 = a > z1[k], gt2 = a > z2[k];
        z2[k] = gt1 ? z1[k] : (gt2 ? a : z2[k]);
        z1[k] = gt1 ? a : z1[k];
        i1[k] = gt1 ? c : i1[k];
      }
    }
    // Decided cells are written now; near-ties are queued and then sampled
    // one per lane, so a step pays for about one divergent slow call instead
    // of one per pass k that has any near-tie (measured at the paper's
    // settings: ~2.5% of cells, 2.2 of 5 passes).
    int queued = 0;
#pragma unroll
    for (int k = 0; k < KC; ++k) {
      const int cell = first + k * kWarp + lane;
      bool slow = false;
      if (cell < N) {
        if (T != 0.0f) {
          const float a = z1[k] / T, b = z2[k] / T;
          slow = !(a - b > nca::kDecisiveGap && a < nca::kDecisiveMax && a > -nca::kDecisiveMax);
        }
        if (!slow) next[cell] = static_cast<uint8_t>(i1[k]);
      }
      const unsigned mask = __ballot_sync(0xffffffffu, slow);
      if (slow) queue[queued + __popc(mask & ((1u << lane) - 1u))] = cell;
      queued += __popc(mask);
    }
    __syncwarp();
    for (int q = lane; q < queued; q += kWarp) {
      const int cell = queue[q];
      next[cell] = static_cast<uint8_t>(select_slow(cfg, eff, w2, w3, grid, cell, seed, noise_domain, sim, step_no));
    }
    __syncwarp();  // the queue is reused by the next pass
  }
}

// Frame f of a row: [START, patches..., END] cut at row_len, or the patches
// alone (scoring). Lanes write consecutive tokens (coalesced).
template <typename T>
__device__ void write_frame_tokens(const nca::Config& cfg, const uint8_t* grid, int f, bool markers, int row_len,
                                   T* row, int lane) {
  const int N = cfg.patches();
  if (markers) {
    const int len = cfg.frame_len();
    for (int i = lane; i < len; i += kWarp) {
      const int64_t pos = int64_t(f) * len + i;
      if (pos >= row_len) break;
      row[pos] = static_cast<T>(nca::frame_token(cfg, grid, i));
    }
  } else {
    for (int k = lane; k < N; k += kWarp)
      row[int64_t(f) * N + k] = static_cast<T>(nca::patch_token(grid, cfg.width, cfg.colors, cfg.patch, k));
  }
}

// What one launch computes (generation or scoring rollouts).
struct SimParams {
  nca::Config cfg;
  WarpLayout layout;
  uint64_t seed;
  int64_t n;
  const uint64_t* sim_ids;  // null: first_sim + i
  uint64_t first_sim;
  const uint64_t* rule_ids;  // null: the rule id is the simulation id
  uint32_t mix_domain, cells_domain, noise_domain;
  int frames;    // recorded frames
  bool markers;  // START/END framing
  int row_len;   // tokens kept per row
  int64_t row_stride;
  void* out;
  TokenType type;
};

// What a launch of training sequences (generate_async) or of scoring
// rollouts (score_tokens_async) computes, but for ids, output and rules;
// the host emulator starts from the same two.
inline SimParams sim_params(const nca::Config& cfg, uint64_t seed, int64_t n, bool scoring) {
  SimParams p{};
  p.cfg = cfg;
  p.layout = warp_layout(cfg);
  p.seed = seed;
  p.n = n;
  p.mix_domain = scoring ? nca::kScoreInitMix : nca::kTrainInitMix;
  p.cells_domain = scoring ? nca::kScoreInitCells : nca::kTrainInitCells;
  p.noise_domain = scoring ? nca::kScoreStepNoise : nca::kTrainStepNoise;
  p.frames = scoring ? cfg.score_frames : cfg.frames_per_sequence();
  p.markers = !scoring;
  p.row_len = scoring ? cfg.score_frames * cfg.patches() : cfg.seq_len + 1;
  p.row_stride = p.row_len;
  return p;
}

// Simulation i of the launch, start to last token, on one warp.
template <int KC, typename T>
__device__ void simulate_warp(const SimParams& p, int64_t i, unsigned char* base, int lane) {
  const nca::Config& cfg = p.cfg;
  const WarpLayout& L = p.layout;
  const uint64_t sim = p.sim_ids ? p.sim_ids[i] : p.first_sim + uint64_t(i);
  const uint64_t rule = p.rule_ids ? p.rule_ids[i] : sim;
  load_rule(cfg, p.seed, rule, base, L, lane);
  // Two named pointers swapped each step rather than an array indexed by
  // the step's parity: the array lived in local memory and hid that the grid
  // is shared memory, so every neighbour read became a generic load.
  uint8_t* grid = base + L.grid0;
  uint8_t* next = base + L.grid1;
  init_grid(cfg, p.seed, p.mix_domain, p.cells_domain, sim, reinterpret_cast<float*>(base + L.cdf), grid, lane);
  T* row = static_cast<T*>(p.out) + i * p.row_stride;
  uint32_t step_no = 0;
  auto advance = [&](int steps) {
    for (int s = 0; s < steps; ++s) {
      step<KC>(cfg, base, L, grid, next, p.seed, p.noise_domain, sim, ++step_no, lane);
      __syncwarp();
      uint8_t* const done = grid;
      grid = next;
      next = done;
    }
  };
  advance(cfg.burn_in);
  for (int f = 0; f < p.frames; ++f) {
    if (f > 0) advance(cfg.dT);
    write_frame_tokens(cfg, grid, f, p.markers, p.row_len, row, lane);
  }
}

}  // namespace ncacuda
