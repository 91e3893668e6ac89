// ncalm._core: thin pybind11 bindings over ncacore. All logic lives in the
// core library; this layer converts arrays and releases the GIL.
#include <pybind11/pybind11.h>

// Not for output: with gcc 13+, <iostream> makes the module reference
// libstdc++'s stream initialisation (std::ios_base_library_init), so a build
// that links libstdc++ statically (as one on a lent H100 did) still sets up
// the stream locale that pybind11 or a dependency may format numbers with.
#include <iostream>

namespace py = pybind11;

void bind_generator(py::module_& m);
void bind_bpe(py::module_& m);
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
  // A -march=native build (NCALM_NATIVE=ON) runs only on CPUs like the one that built it.
#ifdef NCALM_NATIVE
  m.attr("built_native") = true;
#else
  m.attr("built_native") = false;
#endif
  bind_generator(m);
  bind_bpe(m);
#ifdef NCALM_WITH_CUDA
  bind_cuda(m);
#endif
}
