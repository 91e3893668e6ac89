// Runs the kernel's per-warp code (warp_sim.cuh) on the host: 32 threads
// play the lanes and a barrier plays __syncwarp. This checks everything in
// the kernel but the CUDA float intrinsics (already shared through
// detmath.hpp) on machines without a GPU: indexing, lane/pass layout,
// counters, domains, framing. tests/test_cuda_emulated.py compares its
// tokens with the CPU backend's.
//
// usage: warp_emulator gen|score H W C patch burn_in dT temperature
//        identity_bias seq_len colour_wrap score_frames seed first n
// writes n rows of int64 tokens (raw, native endian) to stdout.
#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#define __host__
#define __device__
#define __noinline__
struct float4 {
  float x, y, z, w;
};
using std::min;
static std::barrier<>* g_warp_barrier = nullptr;
static thread_local int t_lane = 0;
static bool g_votes[32];
inline void __syncwarp() { g_warp_barrier->arrive_and_wait(); }
// Every lane votes, all read the votes, then all may vote again.
inline unsigned __ballot_sync(unsigned, bool pred) {
  g_votes[t_lane] = pred;
  __syncwarp();
  unsigned mask = 0;
  for (int l = 0; l < 32; ++l) mask |= unsigned(g_votes[l]) << l;
  __syncwarp();
  return mask;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }

#include "probe_args.hpp"
#include "warp_sim.cuh"

namespace {

template <int KC>
void run(const ncacuda::SimParams& p, unsigned char* smem) {
  for (int64_t i = 0; i < p.n; ++i) {
    std::barrier<> bar(ncacuda::kWarp);
    g_warp_barrier = &bar;
    std::vector<std::thread> lanes;
    for (int lane = 0; lane < ncacuda::kWarp; ++lane)
      lanes.emplace_back([&, lane] {
        t_lane = lane;
        ncacuda::simulate_warp<KC, int64_t>(p, i, smem, lane);
      });
    for (auto& t : lanes) t.join();
  }
}

}  // namespace

int main(int argc, char** argv) {
  ProbeArgs args;
  if (!parse_probe_args(argc, argv, args)) return 2;
  const nca::Config& cfg = args.cfg;

  ncacuda::SimParams p = ncacuda::sim_params(cfg, args.seed, args.n, args.scoring);
  p.first_sim = args.first;
  p.type = ncacuda::TokenType::kInt64;
  std::vector<int64_t> out(size_t(p.n * p.row_stride), -1);
  p.out = out.data();
  std::vector<float4> smem(size_t(p.layout.total) / sizeof(float4) + 1);  // 16-byte aligned
  auto* base = reinterpret_cast<unsigned char*>(smem.data());
  switch (ncacuda::cells_per_lane(cfg.cells())) {
    case 1: run<1>(p, base); break;
    case 2: run<2>(p, base); break;
    case 3: run<3>(p, base); break;
    case 4: run<4>(p, base); break;
    default: run<5>(p, base); break;
  }
  std::fwrite(out.data(), sizeof(int64_t), out.size(), stdout);
  return 0;
}
