// The (rule_ids, ratios) pair every band search returns to Python; shared by
// the CPU and CUDA bindings.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

// Arrays of n rule ids and n ratios, filled by search(ids, ratios) with the
// GIL released (the search runs for seconds on native threads).
template <typename Search>
pybind11::tuple found_rules(int64_t n, Search&& search) {
  pybind11::array_t<uint64_t> ids(n);
  pybind11::array_t<double> ratios(n);
  uint64_t* ip = ids.mutable_data();
  double* rp = ratios.mutable_data();
  {
    pybind11::gil_scoped_release release;
    search(ip, rp);
  }
  return pybind11::make_tuple(ids, ratios);
}
