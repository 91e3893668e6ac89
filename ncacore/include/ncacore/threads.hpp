// A fixed team of threads for the batch entry points (generation, scoring,
// the GPU filter's gzip). Callers share work dynamically (an atomic counter),
// so a thread that cannot be started only makes the batch slower.
#pragma once
#include <exception>
#include <system_error>
#include <thread>
#include <vector>

namespace nca {

// Runs body(k) for k in [0, threads): k = 0 on the calling thread, the others
// on new threads, and returns when all are done. Threads the system refuses
// (std::system_error: resource limits) are skipped instead of ending the
// process, which a joinable std::thread destroyed by an unwinding vector does.
// An exception from body(0) is rethrown after the other threads are joined.
template <typename Body>
void run_threads(int threads, Body body) {
  std::vector<std::thread> pool;
  for (int k = 1; k < threads; ++k) {
    try {
      pool.emplace_back(body, k);
    } catch (const std::system_error&) {
      break;
    }
  }
  std::exception_ptr error;
  try {
    body(0);
  } catch (...) {
    error = std::current_exception();
  }
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace nca
