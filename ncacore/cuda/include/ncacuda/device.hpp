// Device discovery and CUDA error reporting for the GPU backend. Plain C++
// (no CUDA headers), so the pybind11 layer compiles with the host compiler.
#pragma once
#include <string>

namespace ncacuda {

// Number of usable CUDA devices; 0 with a reason in *why (no driver, no
// device, driver older than the runtime ...) when there is none.
int device_count(std::string* why);

// Makes `device` current on the calling thread for the guard's lifetime and
// then restores the caller's, so that callers (torch tracks the current
// device as the CUDA runtime's) see no change. Throws std::runtime_error.
class ScopedDevice {
 public:
  explicit ScopedDevice(int device);
  ~ScopedDevice();
  ScopedDevice(const ScopedDevice&) = delete;
  ScopedDevice& operator=(const ScopedDevice&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

// Device ordinal owning the memory at `ptr` (device or managed memory), or
// -1 when it is host or unknown memory.
int pointer_device(const void* ptr);

}  // namespace ncacuda
