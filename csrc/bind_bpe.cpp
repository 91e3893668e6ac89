// ncalm._core.BytePairEncoder: GPT-2's byte-level BPE (ncacore/bpe.hpp) over a Python str.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "ncacore/bpe.hpp"

namespace py = pybind11;

namespace {

// The encoder's piece cache makes encode() a writer: one call at a time per object, the GIL released.
struct LockedEncoder {
  nca::BytePairEncoder enc;
  std::mutex mutex;
};

std::unique_ptr<LockedEncoder> make(const std::vector<std::string>& tokens, const py::bytes& classes,
                                    size_t cache_size) {
  const std::string c = classes;
  return std::unique_ptr<LockedEncoder>(
      new LockedEncoder{nca::BytePairEncoder(tokens, std::vector<uint8_t>(c.begin(), c.end()), cache_size), {}});
}

py::object encode(LockedEncoder& self, const py::str& text) {
  Py_ssize_t size = 0;
  // Python's own UTF-8 (no copy for an ASCII str); a lone surrogate raises UnicodeEncodeError, as str.encode.
  const char* utf8 = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
  if (utf8 == nullptr) throw py::error_already_set();
  std::vector<uint32_t> ids;
  bool ok;
  {
    py::gil_scoped_release release;  // `text` keeps the buffer alive
    std::lock_guard<std::mutex> lock(self.mutex);
    ids.reserve(static_cast<size_t>(size) / 4 + 16);
    ok = self.enc.encode(std::string_view(utf8, static_cast<size_t>(size)), ids);
  }
  if (!ok) return py::none();
  py::array_t<uint32_t> out(static_cast<py::ssize_t>(ids.size()));
  if (!ids.empty()) std::memcpy(out.mutable_data(), ids.data(), ids.size() * sizeof(uint32_t));
  return std::move(out);
}

}  // namespace

void bind_bpe(py::module_& m) {
  py::class_<LockedEncoder>(m, "BytePairEncoder",
                            "GPT-2's byte-level BPE (tiktoken's r50k pre-tokenizer and merges) with a piece cache.")
      .def(py::init(&make), py::arg("tokens"), py::arg("classes"), py::arg("cache_size") = 1 << 18)
      .def("encode", &encode, py::arg("text"))
      .def_property_readonly("vocab_size", [](const LockedEncoder& e) { return e.enc.vocab_size(); })
      .def_property_readonly("cached_pieces", [](LockedEncoder& e) {
        std::lock_guard<std::mutex> lock(e.mutex);
        return e.enc.cached_pieces();
      });
}
