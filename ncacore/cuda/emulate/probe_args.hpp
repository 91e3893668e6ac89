// The command line that the host probes share (warp_emulator.cpp, and
// tests/cpu_probe.cpp for the cross-compiled CPU core), so that one test
// harness drives both:
//   PROG gen|score H W C patch burn_in dT temperature identity_bias seq_len
//        colour_wrap score_frames seed first n
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ncacore/config.hpp"

struct ProbeArgs {
  nca::Config cfg;
  bool scoring = false;  // score: the scoring rollouts' patches; gen: training sequences
  uint64_t seed = 0;
  uint64_t first = 0;    // the first sequence (gen) or rule (score) id
  int64_t n = 0;         // how many
};

// The whole command line, the config checked by the core; false (after the usage line) for a wrong
// count or mode.
inline bool parse_probe_args(int argc, char** argv, ProbeArgs& a) {
  if (argc != 16 || (std::strcmp(argv[1], "gen") != 0 && std::strcmp(argv[1], "score") != 0)) {
    std::fprintf(stderr, "usage: %s gen|score H W C patch burn_in dT T bias seq_len wrap score_frames seed first n\n",
                 argv[0]);
    return false;
  }
  a.scoring = std::strcmp(argv[1], "score") == 0;
  a.cfg.height = std::atoi(argv[2]);
  a.cfg.width = std::atoi(argv[3]);
  a.cfg.colors = std::atoi(argv[4]);
  a.cfg.patch = std::atoi(argv[5]);
  a.cfg.burn_in = std::atoi(argv[6]);
  a.cfg.dT = std::atoi(argv[7]);
  a.cfg.temperature = std::strtof(argv[8], nullptr);
  a.cfg.identity_bias = std::strtof(argv[9], nullptr);
  a.cfg.seq_len = std::atoi(argv[10]);
  a.cfg.colour_wrap = std::atoi(argv[11]) != 0;
  a.cfg.score_frames = std::atoi(argv[12]);
  nca::check(a.cfg);
  a.seed = std::strtoull(argv[13], nullptr, 10);
  a.first = std::strtoull(argv[14], nullptr, 10);
  a.n = std::strtoll(argv[15], nullptr, 10);
  return true;
}
