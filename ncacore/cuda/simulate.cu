// The fused kernel and its two launches: training sequences (generate_async)
// and scoring rollouts for the band filter (score_tokens_async). The CPU
// counterparts are generate() and score_one() in ncacore/src/generate.cpp.
#include <cuda_runtime.h>

#include <stdexcept>

#include "ncacore/generate.hpp"
#include "ncacore/philox.hpp"
#include "ncacore/text.hpp"
#include "ncacuda/check.cuh"
#include "ncacuda/kernels.hpp"
#include "warp_sim.cuh"

namespace ncacuda {

namespace {

constexpr int kWarpsPerBlock = 4;

// One warp per simulation; warps never wait on each other.
template <int KC>
__global__ void __launch_bounds__(kWarpsPerBlock * kWarp, 3) simulate_kernel(const __grid_constant__ SimParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int lane = threadIdx.x & (kWarp - 1), warp = threadIdx.x / kWarp;
  const int64_t i = int64_t(blockIdx.x) * (blockDim.x / kWarp) + warp;
  if (i >= p.n) return;
  unsigned char* base = smem + warp * p.layout.total;
  switch (p.type) {
    case TokenType::kInt32: simulate_warp<KC, int32_t>(p, i, base, lane); break;
    case TokenType::kInt64: simulate_warp<KC, int64_t>(p, i, base, lane); break;
    case TokenType::kUInt16: simulate_warp<KC, uint16_t>(p, i, base, lane); break;
  }
}

template <int KC>
void launch_kc(const SimParams& p, int warps, size_t smem, cudaStream_t stream) {
  if (smem > 48 * 1024)  // the default dynamic limit; raising it is a host-side attribute, no sync
    NCACUDA_CHECK(cudaFuncSetAttribute(simulate_kernel<KC>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const int64_t blocks = (p.n + warps - 1) / warps;
  if (blocks > 0x7fffffff) throw std::invalid_argument("batch too large for one launch");
  simulate_kernel<KC><<<unsigned(blocks), unsigned(warps * kWarp), smem, stream>>>(p);
  NCACUDA_CHECK(cudaGetLastError());
}

void launch(const SimParams& p, cudaStream_t stream) {
  if (p.n <= 0) return;
  int device = 0, limit = 0;
  NCACUDA_CHECK(cudaGetDevice(&device));
  NCACUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const int warps = std::min(kWarpsPerBlock, limit / p.layout.total);
  if (warps < 1)
    throw std::invalid_argument("CUDA backend: one simulation of this config needs " + nca::num(p.layout.total) +
                                " bytes of shared memory, the device offers " + nca::num(limit) +
                                "; use the CPU backend");
  const size_t smem = size_t(warps) * p.layout.total;
  switch (cells_per_lane(p.cfg.cells())) {
    case 1: launch_kc<1>(p, warps, smem, stream); break;
    case 2: launch_kc<2>(p, warps, smem, stream); break;
    case 3: launch_kc<3>(p, warps, smem, stream); break;
    case 4: launch_kc<4>(p, warps, smem, stream); break;
    default: launch_kc<5>(p, warps, smem, stream); break;
  }
}

void check_config(const nca::Config& cfg) {
  nca::check(cfg);
  const std::string why = unsupported(cfg);
  if (!why.empty()) throw std::invalid_argument(why);
}

}  // namespace

std::string unsupported(const nca::Config& cfg) {
  // 163 KB: the smallest opt-in shared memory per block of the targets (sm_80).
  constexpr int kSmallestLimit = 163 * 1024;
  const std::string invalid = nca::validate(cfg);
  if (!invalid.empty()) return invalid;
  const int bytes = warp_layout(cfg).total;
  if (bytes > kSmallestLimit)
    return "CUDA backend: a " + nca::num(cfg.height) + "x" + nca::num(cfg.width) + " grid with " +
           nca::num(cfg.colors) + " colors needs " + nca::num(bytes) + " bytes of shared memory per simulation (limit " +
           nca::num(kSmallestLimit) + "); use the CPU backend";
  return "";
}

void generate_async(const nca::Config& cfg, uint64_t seed, const Batch& batch, void* out, TokenType type,
                    int64_t row_stride, void* stream) {
  check_config(cfg);
  if (batch.n < 0) throw std::invalid_argument("batch size must be >= 0");
  if (batch.n > 0 && out == nullptr) throw std::invalid_argument("out is a null pointer");
  if (row_stride < cfg.seq_len + 1) throw std::invalid_argument("row_stride must be >= seq_len + 1");
  if (cfg.band && batch.rule_ids == nullptr)
    throw std::invalid_argument("the config has a band: pass the rules found by Filter::find as rule_ids");
  if (type == TokenType::kUInt16 && cfg.vocab() > 65536)
    throw std::invalid_argument("vocabulary " + std::to_string(cfg.vocab()) + " does not fit uint16 output");
  if (!batch.seq_ids && batch.n > 0 && batch.first_seq + uint64_t(batch.n - 1) > nca::kMaxSequenceId)
    throw std::invalid_argument("sequence ids exceed 2**40 - 1");
  SimParams p = sim_params(cfg, seed, batch.n, /*scoring=*/false);
  p.sim_ids = batch.seq_ids;
  p.first_sim = batch.first_seq;
  // Without rule ids the rule is candidate 0 of the sequence's stream, whose
  // id equals the sequence id (candidate_id(seq, 0) == seq).
  p.rule_ids = batch.rule_ids;
  p.row_stride = row_stride;
  p.out = out;
  p.type = type;
  launch(p, static_cast<cudaStream_t>(stream));
}

void score_tokens_async(const nca::Config& cfg, uint64_t seed, const uint64_t* rule_ids, uint64_t first_rule,
                        int64_t n, int32_t* out, void* stream) {
  check_config(cfg);
  SimParams p = sim_params(cfg, seed, n, /*scoring=*/true);
  // A candidate's scoring simulation has the candidate's own id (score_one).
  p.sim_ids = rule_ids;
  p.first_sim = first_rule;
  p.rule_ids = nullptr;
  p.out = out;
  p.type = TokenType::kInt32;
  launch(p, static_cast<cudaStream_t>(stream));
}

}  // namespace ncacuda
