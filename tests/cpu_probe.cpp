// The CPU core's generation and scoring rollouts as a standalone program
// without Python or zlib, for tests/test_isa.py to build with a cross
// compiler and run under an emulator (aarch64: the scalar path). Writes
// int64 tokens to stdout, as ncacore/cuda/emulate/warp_emulator.cpp does:
//   gen:   sequences first .. first + n - 1 (no band: rule = sequence id)
//   score: the score_frames frames of rules first .. first + n - 1's scoring rollouts
#include <cstdio>
#include <vector>

#include "../ncacore/cuda/emulate/probe_args.hpp"
#include "ncacore/rollout.hpp"
#include "ncacore/tokenize.hpp"

int main(int argc, char** argv) {
  ProbeArgs args;
  if (!parse_probe_args(argc, argv, args)) return 2;
  const nca::Config& cfg = args.cfg;
  const bool gen = !args.scoring;
  const uint64_t seed = args.seed;

  nca::Simulator sim(cfg);
  nca::RuleTables rule;
  const int len = gen ? cfg.seq_len + 1 : cfg.score_frames * cfg.patches();
  std::vector<int64_t> out(static_cast<size_t>(len));
  for (uint64_t id = args.first; id < args.first + uint64_t(args.n); ++id) {
    rule.sample(cfg, seed, id);
    sim.init(seed, id, gen ? nca::SimKind::kTrain : nca::SimKind::kScore);
    sim.steps(rule, cfg.burn_in);
    for (int f = 0, written = 0; written < len; ++f) {  // as generate.cpp's generate and score_one
      if (f > 0) sim.steps(rule, cfg.dT);
      if (gen) {
        written += nca::write_frame(cfg, sim.grid(), 0, len - written, out.data() + written);
      } else {
        nca::write_patches(cfg, sim.grid(), out.data() + written);
        written += cfg.patches();
      }
    }
    std::fwrite(out.data(), sizeof(int64_t), out.size(), stdout);
  }
  return 0;
}
