// The band search in batches, for scorers that want many candidates at once
// (the GPU filter). It accepts exactly the rules find_rules accepts one
// candidate at a time: each sequence takes the first in-band candidate of its
// own stream, whichever batch that candidate was scored in.
#pragma once
#include <cstdint>
#include <functional>

#include "ncacore/config.hpp"

namespace nca {

// The method's band test: strictly inside (band_lower, band_upper).
inline bool in_band(const Config& cfg, double ratio) { return cfg.band_lower < ratio && ratio < cfg.band_upper; }

// Thrown as std::invalid_argument: a band that admits no rule of these
// dynamics is a config error, on every backend.
[[noreturn]] void throw_no_rule_in_band(const Config& cfg, uint64_t seq);

// Writes the complexity score of each of n candidate rule ids.
using ScoreBatch = std::function<void(const uint64_t* rule_ids, int64_t n, double* ratios)>;

// find_rules' result (ratios nullable; NaN without a band), with candidates
// scored in rounds of about `batch`: every unresolved sequence scores its next
// few candidates, so late rounds stay full as sequences resolve.
void find_rules_batched(const Config& cfg, const uint64_t* seq_ids, int64_t n, int64_t batch,
                        const ScoreBatch& score, uint64_t* rule_ids, double* ratios);

}  // namespace nca
