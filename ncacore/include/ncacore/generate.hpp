// Batch entry points of the CPU backend: whole sequences, rule search inside
// the complexity band, scoring and raw rollouts, multithreaded over items.
// Every item is a pure function of (config, seed, its ids), so results do not
// depend on the thread count or on which other items are in the batch.
#pragma once
#include <cstdint>

#include "ncacore/config.hpp"

namespace nca {

// Candidate rule `attempt` of sequence `seq`'s own candidate stream.
constexpr int kAttemptShift = 40;
constexpr uint64_t kMaxSequenceId = (uint64_t(1) << kAttemptShift) - 1;
inline uint64_t candidate_id(uint64_t seq, uint32_t attempt) { return seq | (uint64_t(attempt) << kAttemptShift); }

// Complexity score of each rule: one scoring simulation, burn_in steps, then
// score_frames frames of patch tokens as int32 through gzip level 9.
void score_rules(const Config& cfg, uint64_t seed, const uint64_t* rule_ids, int64_t n, double* ratios,
                 int threads);

// First candidate of each id's stream inside the band (candidate 0 without a
// band). ratios (nullable) receives the accepted rule's score (NaN without a
// band). Throws std::invalid_argument when max_attempts candidates all miss.
void find_rules(const Config& cfg, uint64_t seed, const uint64_t* seq_ids, int64_t n, uint64_t* rule_ids,
                double* ratios, int threads);

// Token sequences, seq_len + 1 tokens each, row-major into out. Sequence i
// runs training simulation seq_ids[i] under rule rule_ids[i], or, when
// rule_ids is null, under find_rules' rule for seq_ids[i].
template <typename T>
void generate(const Config& cfg, uint64_t seed, const uint64_t* seq_ids, const uint64_t* rule_ids, int64_t n,
              T* out, int threads);

// Recorded grids (frame k = after burn_in + k*dT steps): out is
// (n, frames, H, W) uint8. Training simulations sim_ids[i] under rule_ids[i].
void rollout(const Config& cfg, uint64_t seed, const uint64_t* rule_ids, const uint64_t* sim_ids, int64_t n,
             int frames, uint8_t* out, int threads);

// Number of threads a `threads` argument means (<= 0: all hardware threads).
int resolve_threads(int threads);

}  // namespace nca
