#include "ncacore/band_search.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <vector>

#include "ncacore/generate.hpp"
#include "ncacore/text.hpp"

namespace nca {

void throw_no_rule_in_band(const Config& cfg, uint64_t seq) {
  throw std::invalid_argument("no rule inside band (" + num(cfg.band_lower) + ", " + num(cfg.band_upper) +
                              ") after " + num(cfg.max_attempts) + " candidates for sequence " + num(seq) +
                              "; widen the band or change the dynamics");
}

void find_rules_batched(const Config& cfg, const uint64_t* seq_ids, int64_t n, int64_t batch,
                        const ScoreBatch& score, uint64_t* rule_ids, double* ratios) {
  check(cfg);
  if (batch < 1) throw std::invalid_argument("batch must be >= 1");
  for (int64_t i = 0; i < n; ++i)
    if (seq_ids[i] > kMaxSequenceId) throw std::invalid_argument("sequence id exceeds 2**40 - 1");
  if (!cfg.band) {
    for (int64_t i = 0; i < n; ++i) {
      rule_ids[i] = candidate_id(seq_ids[i], 0);
      if (ratios) ratios[i] = std::numeric_limits<double>::quiet_NaN();
    }
    return;
  }
  std::vector<int64_t> pending(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pending[size_t(i)] = i;
  std::vector<int64_t> tried(size_t(n), 0);  // candidates scored so far, per sequence
  std::vector<uint64_t> ids;
  std::vector<double> scores;
  while (!pending.empty()) {
    // A few candidates per sequence: more would score past the first hit for
    // nothing, fewer would leave the scorer's batch short.
    const int64_t per = std::clamp<int64_t>(batch / int64_t(pending.size()), 1, 64);
    std::vector<int64_t> first(pending.size() + 1);
    ids.clear();
    for (size_t q = 0; q < pending.size(); ++q) {
      const int64_t i = pending[q];
      first[q] = int64_t(ids.size());
      const int64_t end = std::min<int64_t>(tried[size_t(i)] + per, cfg.max_attempts);
      for (int64_t a = tried[size_t(i)]; a < end; ++a) ids.push_back(candidate_id(seq_ids[i], uint32_t(a)));
    }
    first[pending.size()] = int64_t(ids.size());
    scores.resize(ids.size());
    score(ids.data(), int64_t(ids.size()), scores.data());
    std::vector<int64_t> still;
    for (size_t q = 0; q < pending.size(); ++q) {
      const int64_t i = pending[q];
      int64_t hit = first[q];
      while (hit < first[q + 1] && !in_band(cfg, scores[size_t(hit)])) ++hit;
      if (hit < first[q + 1]) {
        rule_ids[i] = ids[size_t(hit)];
        if (ratios) ratios[i] = scores[size_t(hit)];
        continue;
      }
      tried[size_t(i)] += first[q + 1] - first[q];
      if (tried[size_t(i)] >= cfg.max_attempts) throw_no_rule_in_band(cfg, seq_ids[i]);
      still.push_back(i);
    }
    pending.swap(still);
  }
}

}  // namespace nca
