// Band filtering with the rollouts on the GPU and gzip on CPU threads: the
// GPU rolls out chunk k+1 while the CPU threads compress chunk k. Same
// scores, hence the same accepted rules, as the CPU path (generate.cpp's
// score_rules / find_rules), since the tokens are bit-identical.
#pragma once
#include <cstdint>
#include <memory>

#include "ncacore/config.hpp"

namespace ncacuda {

class Filter {
 public:
  // Owns a stream, device buffers for two chunks of `chunk` candidates and
  // pinned host buffers; threads <= 0 means all hardware threads.
  Filter(const nca::Config& cfg, uint64_t seed, int device, int threads, int64_t chunk);
  ~Filter();
  Filter(const Filter&) = delete;
  Filter& operator=(const Filter&) = delete;

  // Complexity score of each candidate rule (host arrays), as score_rules.
  void score(const uint64_t* rule_ids, int64_t n, double* ratios);
  // First in-band candidate of each sequence's stream, as find_rules
  // (ratios nullable; NaN without a band). Throws std::invalid_argument when
  // max_attempts candidates all miss.
  void find(const uint64_t* seq_ids, int64_t n, uint64_t* rule_ids, double* ratios);

 private:
  struct State;
  static void release(State& s);
  std::unique_ptr<State> s_;
};

}  // namespace ncacuda
