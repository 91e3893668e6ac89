// The fused GPU generator: rule sampling, initial grid, burn-in, steps and
// tokenization in one kernel, one warp per simulation, the grid and the
// rule's tables in shared memory; only tokens reach global memory.
// Plain C++ (no CUDA headers): streams travel as opaque handles.
#pragma once
#include <cstdint>
#include <string>

#include "ncacore/config.hpp"

namespace ncacuda {

enum class TokenType : int { kInt32 = 0, kInt64 = 1, kUInt16 = 2 };

// Which sequences to generate. Every pointer is device memory.
struct Batch {
  int64_t n = 0;
  // Sequence (training simulation) ids; null: sequence i is first_seq + i.
  const uint64_t* seq_ids = nullptr;
  uint64_t first_seq = 0;
  // Rule of each sequence; null: candidate 0 of the sequence's own stream,
  // the rule it gets without a band. Required when cfg.band is set (the band
  // search needs gzip, see Filter).
  const uint64_t* rule_ids = nullptr;
};

// "" when cfg runs on the GPU kernels, else the reason (e.g. a grid too large
// for one warp's shared memory). Does not look at any device.
std::string unsupported(const nca::Config& cfg);

// Enqueues seq_len + 1 tokens per sequence into out (row i at
// out + i * row_stride elements) on `stream` (a cudaStream_t; 0 = legacy
// default) of the current device. No allocation, no synchronisation; throws
// std::invalid_argument / std::runtime_error on bad arguments or launch errors.
void generate_async(const nca::Config& cfg, uint64_t seed, const Batch& batch, void* out, TokenType type,
                    int64_t row_stride, void* stream);

// Enqueues the scoring rollouts of candidate rules: score_frames frames of
// patch tokens (no START/END) as int32, row i = rule rule_ids[i] (device
// pointer; null: first_rule + i), score_frames * patches() tokens per row.
void score_tokens_async(const nca::Config& cfg, uint64_t seed, const uint64_t* rule_ids, uint64_t first_rule,
                        int64_t n, int32_t* out, void* stream);

}  // namespace ncacuda
