// Device discovery and CUDA error reporting for the GPU backend. Plain C++
// (no CUDA headers), so the pybind11 layer compiles with the host compiler.
#pragma once
#include <string>

namespace ncacuda {

// Number of usable CUDA devices; 0 with a reason in *why (no driver, no
// device, driver older than the runtime ...) when there is none.
int device_count(std::string* why);

// Makes `device` current on the calling thread; throws std::runtime_error.
void set_device(int device);

// Device ordinal owning the memory at `ptr` (device or managed memory), or
// -1 when it is host or unknown memory.
int pointer_device(const void* ptr);

}  // namespace ncacuda
