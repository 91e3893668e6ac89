#include "ncacore/generate.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#include "ncacore/band_search.hpp"
#include "ncacore/complexity.hpp"
#include "ncacore/rollout.hpp"
#include "ncacore/threads.hpp"
#include "ncacore/tokenize.hpp"

namespace nca {

int resolve_threads(int threads) {
  if (threads > 0) return threads;
#if defined(__linux__)
  // The CPUs this process may run on (taskset, cgroup cpusets), not the
  // host's: hardware_concurrency() would oversubscribe a pinned process.
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
    const int n = CPU_COUNT(&allowed);
    if (n > 0) return n;
  }
#endif
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? int(hw) : 1;
}

namespace {

// Per-thread scratch: allocated once per batch, reused for every item.
struct Worker {
  explicit Worker(const Config& cfg) : sim(cfg) {}
  Simulator sim;
  RuleTables rule;
  std::unique_ptr<GzipScorer> gzip;  // only filtering needs one
  std::vector<int32_t> tokens;
};

// Runs fn(worker, i) for i in [0, n) on `threads` threads with dynamic
// scheduling (items cost differently: rejected candidates, noisy cells).
template <typename Fn>
void parallel_for(const Config& cfg, int64_t n, int threads, Fn fn) {
  const int t = int(std::min<int64_t>(resolve_threads(threads), std::max<int64_t>(n, 1)));
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto body = [&](int) {
    try {
      Worker w(cfg);
      for (int64_t i; (i = next.fetch_add(1)) < n;) fn(w, i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next.store(n);
    }
  };
  run_threads(t, body);
  if (error) std::rethrow_exception(error);
}

double score_one(const Config& cfg, uint64_t seed, uint64_t rule_id, Worker& w) {
  if (!w.gzip) w.gzip = std::make_unique<GzipScorer>();
  w.rule.sample(cfg, seed, rule_id);
  w.sim.init(seed, rule_id, SimKind::kScore);
  w.sim.steps(w.rule, cfg.burn_in);
  const int N = cfg.patches();
  w.tokens.resize(size_t(N) * cfg.score_frames);
  for (int f = 0; f < cfg.score_frames; ++f) {
    if (f > 0) w.sim.steps(w.rule, cfg.dT);
    write_patches(cfg, w.sim.grid(), w.tokens.data() + size_t(f) * N);
  }
  // Little-endian int32 bytes, as docs/nca-semantics.md asks (x86 and CUDA hosts are LE).
  return w.gzip->ratio(reinterpret_cast<const uint8_t*>(w.tokens.data()), w.tokens.size() * sizeof(int32_t));
}

uint64_t find_one(const Config& cfg, uint64_t seed, uint64_t seq, Worker& w, double* ratio) {
  if (seq > kMaxSequenceId) throw std::invalid_argument("sequence id exceeds 2**40 - 1");
  if (!cfg.band) {
    if (ratio) *ratio = std::numeric_limits<double>::quiet_NaN();
    return candidate_id(seq, 0);
  }
  for (int a = 0; a < cfg.max_attempts; ++a) {
    const uint64_t id = candidate_id(seq, uint32_t(a));
    const double r = score_one(cfg, seed, id, w);
    if (in_band(cfg, r)) {
      if (ratio) *ratio = r;
      return id;
    }
  }
  throw_no_rule_in_band(cfg, seq);
}

}  // namespace

void score_rules(const Config& cfg, uint64_t seed, const uint64_t* rule_ids, int64_t n, double* ratios,
                 int threads) {
  check(cfg);
  parallel_for(cfg, n, threads, [&](Worker& w, int64_t i) { ratios[i] = score_one(cfg, seed, rule_ids[i], w); });
}

void find_rules(const Config& cfg, uint64_t seed, const uint64_t* seq_ids, int64_t n, uint64_t* rule_ids,
                double* ratios, int threads) {
  check(cfg);
  parallel_for(cfg, n, threads, [&](Worker& w, int64_t i) {
    rule_ids[i] = find_one(cfg, seed, seq_ids[i], w, ratios ? ratios + i : nullptr);
  });
}

template <typename T>
void generate(const Config& cfg, uint64_t seed, const uint64_t* seq_ids, const uint64_t* rule_ids, int64_t n,
              T* out, int threads) {
  check(cfg);
  if (std::is_same_v<T, uint16_t> && cfg.vocab() > 65536)
    throw std::invalid_argument("vocabulary " + std::to_string(cfg.vocab()) + " does not fit uint16 output");
  const int total = cfg.seq_len + 1;
  parallel_for(cfg, n, threads, [&](Worker& w, int64_t i) {
    const uint64_t rid = rule_ids ? rule_ids[i] : find_one(cfg, seed, seq_ids[i], w, nullptr);
    w.rule.sample(cfg, seed, rid);
    w.sim.init(seed, seq_ids[i], SimKind::kTrain);
    w.sim.steps(w.rule, cfg.burn_in);
    T* dst = out + i * int64_t(total);
    int written = 0;
    for (int f = 0; written < total; ++f) {
      if (f > 0) w.sim.steps(w.rule, cfg.dT);
      written += write_frame(cfg, w.sim.grid(), 0, total - written, dst + written);
    }
  });
}

template void generate<int32_t>(const Config&, uint64_t, const uint64_t*, const uint64_t*, int64_t, int32_t*, int);
template void generate<int64_t>(const Config&, uint64_t, const uint64_t*, const uint64_t*, int64_t, int64_t*, int);
template void generate<uint16_t>(const Config&, uint64_t, const uint64_t*, const uint64_t*, int64_t, uint16_t*, int);

void rollout(const Config& cfg, uint64_t seed, const uint64_t* rule_ids, const uint64_t* sim_ids, int64_t n,
             int frames, uint8_t* out, int threads) {
  check(cfg);
  const size_t cells = size_t(cfg.cells());
  parallel_for(cfg, n, threads, [&](Worker& w, int64_t i) {
    w.rule.sample(cfg, seed, rule_ids[i]);
    w.sim.init(seed, sim_ids[i], SimKind::kTrain);
    w.sim.steps(w.rule, cfg.burn_in);
    for (int f = 0; f < frames; ++f) {
      if (f > 0) w.sim.steps(w.rule, cfg.dT);
      std::copy(w.sim.grid(), w.sim.grid() + cells, out + (size_t(i) * frames + f) * cells);
    }
  });
}

}  // namespace nca
