#include "ncacuda/filter.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "ncacore/complexity.hpp"
#include "ncacore/generate.hpp"
#include "ncacuda/check.cuh"
#include "ncacuda/kernels.hpp"

namespace ncacuda {

namespace {

// One in-flight chunk: ids up, tokens down, an event when they have landed.
struct Slot {
  uint64_t* host_ids = nullptr;
  uint64_t* dev_ids = nullptr;
  int32_t* host_tokens = nullptr;
  int32_t* dev_tokens = nullptr;
  cudaEvent_t done = nullptr;
  int64_t n = 0;       // candidates in flight (0: idle)
  int64_t offset = 0;  // where their ratios go
};

// Restores the caller's current device on scope exit.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    NCACUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) NCACUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

}  // namespace

struct Filter::State {
  nca::Config cfg;
  uint64_t seed = 0;
  int device = 0;
  int threads = 1;
  int64_t chunk = 0;
  int64_t row = 0;  // int32 tokens per candidate
  cudaStream_t stream = nullptr;
  Slot slots[2];
  std::vector<std::unique_ptr<nca::GzipScorer>> scorers;  // one per thread, reused
  std::mutex busy;  // one call at a time: the slots are shared

  void score_all(const uint64_t* rule_ids, int64_t n, double* ratios);

  void enqueue(Slot& s, const uint64_t* ids, int64_t n, int64_t offset) {
    std::memcpy(s.host_ids, ids, size_t(n) * sizeof(uint64_t));
    NCACUDA_CHECK(cudaMemcpyAsync(s.dev_ids, s.host_ids, size_t(n) * sizeof(uint64_t), cudaMemcpyHostToDevice, stream));
    score_tokens_async(cfg, seed, s.dev_ids, 0, n, s.dev_tokens, stream);
    NCACUDA_CHECK(cudaMemcpyAsync(s.host_tokens, s.dev_tokens, size_t(n * row) * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, stream));
    NCACUDA_CHECK(cudaEventRecord(s.done, stream));
    s.n = n;
    s.offset = offset;
  }

  // Waits for the slot's tokens and gzips them on all threads.
  void drain(Slot& s, double* ratios) {
    if (s.n == 0) return;
    NCACUDA_CHECK(cudaEventSynchronize(s.done));
    std::atomic<int64_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    const size_t bytes = size_t(row) * sizeof(int32_t);
    auto body = [&](int t) {
      try {
        for (int64_t i; (i = next.fetch_add(1)) < s.n;)
          ratios[s.offset + i] =
              scorers[t]->ratio(reinterpret_cast<const uint8_t*>(s.host_tokens + i * row), bytes);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next.store(s.n);
      }
    };
    const int t = int(std::min<int64_t>(threads, s.n));
    std::vector<std::thread> pool;
    for (int k = 1; k < t; ++k) pool.emplace_back(body, k);
    body(0);
    for (auto& th : pool) th.join();
    s.n = 0;
    if (error) std::rethrow_exception(error);
  }
};

Filter::Filter(const nca::Config& cfg, uint64_t seed, int device, int threads, int64_t chunk)
    : s_(std::make_unique<State>()) {
  nca::check(cfg);
  const std::string why = unsupported(cfg);
  if (!why.empty()) throw std::invalid_argument(why);
  if (chunk < 1) throw std::invalid_argument("chunk must be >= 1");
  State& s = *s_;
  s.cfg = cfg;
  s.seed = seed;
  s.device = device;
  s.threads = nca::resolve_threads(threads);
  s.chunk = chunk;
  s.row = int64_t(cfg.score_frames) * cfg.patches();
  for (int t = 0; t < s.threads; ++t) s.scorers.push_back(std::make_unique<nca::GzipScorer>());
  DeviceGuard guard(device);
  try {
    NCACUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    for (Slot& slot : s.slots) {
      NCACUDA_CHECK(cudaMallocHost(&slot.host_ids, size_t(chunk) * sizeof(uint64_t)));
      NCACUDA_CHECK(cudaMalloc(&slot.dev_ids, size_t(chunk) * sizeof(uint64_t)));
      NCACUDA_CHECK(cudaMallocHost(&slot.host_tokens, size_t(chunk * s.row) * sizeof(int32_t)));
      NCACUDA_CHECK(cudaMalloc(&slot.dev_tokens, size_t(chunk * s.row) * sizeof(int32_t)));
      NCACUDA_CHECK(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming));
    }
  } catch (...) {
    release(s);
    throw;
  }
}

Filter::~Filter() {
  if (s_) release(*s_);
}

// Frees whatever was allocated (also after a failed constructor).
void Filter::release(State& s) {
  int previous = 0;
  if (cudaGetDevice(&previous) == cudaSuccess) cudaSetDevice(s.device);
  if (s.stream) cudaStreamSynchronize(s.stream);
  for (Slot& slot : s.slots) {
    if (slot.done) cudaEventDestroy(slot.done);
    if (slot.dev_tokens) cudaFree(slot.dev_tokens);
    if (slot.host_tokens) cudaFreeHost(slot.host_tokens);
    if (slot.dev_ids) cudaFree(slot.dev_ids);
    if (slot.host_ids) cudaFreeHost(slot.host_ids);
    slot = Slot{};
  }
  if (s.stream) cudaStreamDestroy(s.stream);
  s.stream = nullptr;
  cudaSetDevice(previous);
}

void Filter::score(const uint64_t* rule_ids, int64_t n, double* ratios) {
  std::lock_guard<std::mutex> lock(s_->busy);
  s_->score_all(rule_ids, n, ratios);
}

void Filter::State::score_all(const uint64_t* rule_ids, int64_t n, double* ratios) {
  State& s = *this;
  DeviceGuard guard(s.device);
  // Chunk k goes to the GPU before chunk k-1 is compressed, so the two overlap.
  int k = 0;
  try {
    for (int64_t at = 0; at < n; at += s.chunk, ++k) {
      s.enqueue(s.slots[k % 2], rule_ids + at, std::min(s.chunk, n - at), at);
      s.drain(s.slots[(k + 1) % 2], ratios);
    }
    s.drain(s.slots[(k + 1) % 2], ratios);
  } catch (...) {
    // Leave no chunk in flight over buffers the next call reuses.
    cudaStreamSynchronize(s.stream);
    s.slots[0].n = s.slots[1].n = 0;
    throw;
  }
}

void Filter::find(const uint64_t* seq_ids, int64_t n, uint64_t* rule_ids, double* ratios) {
  State& s = *s_;
  std::lock_guard<std::mutex> lock(s.busy);
  const nca::Config& cfg = s.cfg;
  for (int64_t i = 0; i < n; ++i)
    if (seq_ids[i] > nca::kMaxSequenceId) throw std::invalid_argument("sequence id exceeds 2**40 - 1");
  if (!cfg.band) {
    for (int64_t i = 0; i < n; ++i) {
      rule_ids[i] = nca::candidate_id(seq_ids[i], 0);
      if (ratios) ratios[i] = std::numeric_limits<double>::quiet_NaN();
    }
    return;
  }
  // Rounds: every unresolved sequence scores its next `per` candidates in
  // stream order and takes the first in band, as find_one does one by one.
  // `per` grows as sequences resolve, to keep the chunks full.
  std::vector<int64_t> pending(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pending[size_t(i)] = i;
  std::vector<uint32_t> attempt(size_t(n), 0);
  std::vector<uint64_t> ids;
  std::vector<double> scores;
  while (!pending.empty()) {
    const int64_t per = std::clamp<int64_t>(s.chunk / int64_t(pending.size()), 1, 64);
    ids.clear();
    std::vector<int64_t> first(pending.size() + 1);
    for (size_t q = 0; q < pending.size(); ++q) {
      const int64_t i = pending[q];
      first[q] = int64_t(ids.size());
      for (int64_t a = attempt[size_t(i)]; a < std::min<int64_t>(attempt[size_t(i)] + per, cfg.max_attempts); ++a)
        ids.push_back(nca::candidate_id(seq_ids[i], uint32_t(a)));
    }
    first[pending.size()] = int64_t(ids.size());
    scores.resize(ids.size());
    s.score_all(ids.data(), int64_t(ids.size()), scores.data());
    std::vector<int64_t> still;
    for (size_t q = 0; q < pending.size(); ++q) {
      const int64_t i = pending[q];
      bool found = false;
      for (int64_t j = first[q]; j < first[q + 1] && !found; ++j) {
        if (cfg.band_lower < scores[size_t(j)] && scores[size_t(j)] < cfg.band_upper) {
          rule_ids[i] = ids[size_t(j)];
          if (ratios) ratios[i] = scores[size_t(j)];
          found = true;
        }
      }
      attempt[size_t(i)] += uint32_t(first[q + 1] - first[q]);
      if (found) continue;
      if (int64_t(attempt[size_t(i)]) >= cfg.max_attempts) {
        std::ostringstream e;
        e << "no rule inside band (" << cfg.band_lower << ", " << cfg.band_upper << ") after " << cfg.max_attempts
          << " candidates for sequence " << seq_ids[i] << "; widen the band or change the dynamics";
        throw std::runtime_error(e.str());
      }
      still.push_back(i);
    }
    pending.swap(still);
  }
}

}  // namespace ncacuda
