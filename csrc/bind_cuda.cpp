// ncalm._core's CUDA entry points. Buffers and streams arrive as integers
// (device pointers, cudaStream_t handles) so that torch, cupy or anything
// with __cuda_array_interface__ can drive the kernels without this module
// linking against any of them. Compiled only when the build has CUDA.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "config_dict.hpp"
#include "found_rules.hpp"
#include "numpy_array.hpp"
#include "ncacuda/device.hpp"
#include "ncacuda/filter.hpp"
#include "ncacuda/kernels.hpp"

namespace py = pybind11;
using nca::Config;

namespace {

ncacuda::TokenType token_type(const std::string& name) {
  if (name == "int32") return ncacuda::TokenType::kInt32;
  if (name == "int64") return ncacuda::TokenType::kInt64;
  if (name == "uint16") return ncacuda::TokenType::kUInt16;
  throw std::invalid_argument("out dtype must be int32, int64 or uint16, got " + name);
}

void* as_ptr(uintptr_t p) { return reinterpret_cast<void*>(p); }

}  // namespace

void bind_cuda(py::module_& m) {
  m.def(
      "cuda_device_count",
      [] {
        std::string why;
        const int n = ncacuda::device_count(&why);
        return py::make_tuple(n, why);
      },
      "(number of usable CUDA devices, why none when 0).");
  m.def(
      "cuda_unsupported", [](const Config& cfg) { return ncacuda::unsupported(cfg); },
      py::arg("cfg"), "'' when the config runs on the CUDA kernels, else why not.");
  m.def(
      "cuda_pointer_device", [](uintptr_t ptr) { return ncacuda::pointer_device(as_ptr(ptr)); },
      py::arg("ptr"), "Device ordinal owning a pointer, -1 for host/unknown memory.");
  m.def(
      "cuda_generate",
      [](const Config& cfg, uint64_t seed, uintptr_t out, const std::string& dtype, int64_t n, int64_t row_stride,
         uint64_t first_seq, uintptr_t seq_ids, uintptr_t rule_ids, int device, uintptr_t stream) {
        ncacuda::Batch b;
        b.n = n;
        b.seq_ids = static_cast<const uint64_t*>(as_ptr(seq_ids));
        b.first_seq = first_seq;
        b.rule_ids = static_cast<const uint64_t*>(as_ptr(rule_ids));
        const ncacuda::ScopedDevice on(device);
        ncacuda::generate_async(cfg, seed, b, as_ptr(out), token_type(dtype), row_stride, as_ptr(stream));
      },
      py::arg("cfg"), py::arg("seed"), py::arg("out"), py::arg("dtype"), py::arg("n"), py::arg("row_stride"),
      py::arg("first_seq"), py::arg("seq_ids"), py::arg("rule_ids"), py::arg("device"), py::arg("stream"),
      "Enqueue n sequences into the device buffer `out` on `stream` (pointers as integers, 0 = none).");

  py::class_<ncacuda::Filter>(m, "CudaFilter", "Band filtering: rollouts on the GPU, gzip on CPU threads.")
      .def(py::init([](const Config& cfg, uint64_t seed, int device, int threads, int64_t chunk) {
             return new ncacuda::Filter(cfg, seed, device, threads, chunk);
           }),
           py::arg("cfg"), py::arg("seed"), py::arg("device"), py::arg("threads") = 0, py::arg("chunk") = 16384)
      .def(
          "score",
          [](ncacuda::Filter& f, const Array<uint64_t>& ids) {
            Array<double> ratios(ids.size());
            double* rp = ratios.mutable_data();
            {
              py::gil_scoped_release release;
              f.score(ids.data(), ids.size(), rp);
            }
            return ratios;
          },
          py::arg("rule_ids"))
      .def(
          "find",
          [](ncacuda::Filter& f, const Array<uint64_t>& seq) {
            return found_rules(seq.size(),
                               [&](uint64_t* ids, double* ratios) { f.find(seq.data(), seq.size(), ids, ratios); });
          },
          py::arg("seq_ids"));
}
