// Turns CUDA runtime errors into std::runtime_error with the call site, so
// Python sees a message instead of a corrupted stream.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace ncacuda {

inline void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  // No ostringstream: see ncacore/text.hpp.
  throw std::runtime_error(std::string("CUDA error in ") + what + " (" + file + ":" + std::to_string(line) +
                           "): " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

}  // namespace ncacuda

#define NCACUDA_CHECK(call)                                                      \
  do {                                                                          \
    cudaError_t ncacuda_e_ = (call);                                            \
    if (ncacuda_e_ != cudaSuccess) ::ncacuda::throw_cuda(ncacuda_e_, #call, __FILE__, __LINE__); \
  } while (0)
