// The command line that the host probes share (warp_emulator.cpp, and
// tests/cpu_probe.cpp for the cross-compiled CPU core), so that one test
// harness drives both:
//   PROG gen|score H W C patch burn_in dT temperature identity_bias seq_len
//        colour_wrap score_frames seed first n
#pragma once
#include <cstdio>
#include <cstdlib>

#include "ncacore/config.hpp"

// The config of argv[2..12], checked by the core; false (after the usage line) for a wrong count.
inline bool probe_config(int argc, char** argv, nca::Config& cfg) {
  if (argc != 16) {
    std::fprintf(stderr, "usage: %s gen|score H W C patch burn_in dT T bias seq_len wrap score_frames seed first n\n",
                 argv[0]);
    return false;
  }
  cfg.height = std::atoi(argv[2]);
  cfg.width = std::atoi(argv[3]);
  cfg.colors = std::atoi(argv[4]);
  cfg.patch = std::atoi(argv[5]);
  cfg.burn_in = std::atoi(argv[6]);
  cfg.dT = std::atoi(argv[7]);
  cfg.temperature = std::strtof(argv[8], nullptr);
  cfg.identity_bias = std::strtof(argv[9], nullptr);
  cfg.seq_len = std::atoi(argv[10]);
  cfg.colour_wrap = std::atoi(argv[11]) != 0;
  cfg.score_frames = std::atoi(argv[12]);
  nca::check(cfg);
  return true;
}
