#include "ncacuda/filter.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "ncacore/band_search.hpp"
#include "ncacore/complexity.hpp"
#include "ncacore/generate.hpp"
#include "ncacore/threads.hpp"
#include "ncacuda/check.cuh"
#include "ncacuda/device.hpp"
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
    nca::run_threads(int(std::min<int64_t>(threads, s.n)), body);
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
  ScopedDevice guard(device);
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
  const bool restore = cudaGetDevice(&previous) == cudaSuccess;
  if (restore) cudaSetDevice(s.device);
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
  if (restore) cudaSetDevice(previous);
}

void Filter::score(const uint64_t* rule_ids, int64_t n, double* ratios) {
  std::lock_guard<std::mutex> lock(s_->busy);
  s_->score_all(rule_ids, n, ratios);
}

void Filter::State::score_all(const uint64_t* rule_ids, int64_t n, double* ratios) {
  State& s = *this;
  ScopedDevice guard(s.device);
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
  nca::find_rules_batched(
      s.cfg, seq_ids, n, s.chunk,
      [&s](const uint64_t* ids, int64_t m, double* scores) { s.score_all(ids, m, scores); }, rule_ids, ratios);
}

}  // namespace ncacuda
