// The numpy input type every binding takes: C-contiguous, of the element type
// (converted if need be) and aligned for it. pybind11 has no flag name for
// the last; without it a view such as np.frombuffer(buf, offset=1) reaches the
// core as a misaligned pointer (undefined behaviour, found by UBSan).
#pragma once
#include <pybind11/numpy.h>

template <typename T>
using Array = pybind11::array_t<T, pybind11::array::c_style | pybind11::array::forcecast |
                                       pybind11::detail::npy_api::NPY_ARRAY_ALIGNED_>;
