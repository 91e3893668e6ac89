// ncalm._core: thin pybind11 bindings over ncacore. All logic lives in the
// core library; this layer converts arrays and releases the GIL.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_generator(py::module_& m);
#ifdef NCALM_WITH_CUDA
void bind_cuda(py::module_& m);
#endif

PYBIND11_MODULE(_core, m) {
  m.doc() = "ncalm's compiled NCA generator (ncacore)";
#ifdef NCALM_WITH_CUDA
  m.attr("built_with_cuda") = true;
#else
  m.attr("built_with_cuda") = false;
#endif
  bind_generator(m);
#ifdef NCALM_WITH_CUDA
  bind_cuda(m);
#endif
}
