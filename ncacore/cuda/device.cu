#include "ncacuda/device.hpp"

#include <cuda_runtime.h>

#include "ncacuda/check.cuh"

namespace ncacuda {
namespace {
std::string version(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }
}  // namespace

int device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it so later calls start clean
    if (why) {
      // Without any driver the runtime also says "insufficient driver": tell the two apart.
      int driver = 0, runtime = 0;
      cudaDriverGetVersion(&driver);
      cudaRuntimeGetVersion(&runtime);
      if (driver == 0)
        *why = "no NVIDIA driver found";
      else if (e == cudaErrorInsufficientDriver)
        *why = "the NVIDIA driver supports CUDA " + version(driver) + ", this build needs " + version(runtime);
      else
        *why = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    }
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
