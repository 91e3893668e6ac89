#include "ncacuda/device.hpp"

#include <cuda_runtime.h>

#include "ncacuda/check.cuh"

namespace ncacuda {

int device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it so later calls start clean
    if (why) *why = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    return 0;
  }
  if (n == 0 && why) *why = "the CUDA runtime reports no devices";
  return n;
}

ScopedDevice::ScopedDevice(int device) {
  NCACUDA_CHECK(cudaGetDevice(&previous_));
  if (device != previous_) {
    NCACUDA_CHECK(cudaSetDevice(device));
    changed_ = true;
  }
}

ScopedDevice::~ScopedDevice() {
  if (changed_) cudaSetDevice(previous_);
}

int pointer_device(const void* ptr) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, ptr) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return (a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged) ? a.device : -1;
}

}  // namespace ncacuda
