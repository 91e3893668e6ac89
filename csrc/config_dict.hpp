// nca::Config from the dict that ncalm.config.NCAConfig.core_dict() builds;
// shared by the CPU and CUDA bindings.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <utility>

#include "ncacore/config.hpp"

inline nca::Config config_from_dict(const pybind11::dict& d) {
  nca::Config c;
  c.height = d["height"].cast<int>();
  c.width = d["width"].cast<int>();
  c.colors = d["colors"].cast<int>();
  c.patch = d["patch"].cast<int>();
  c.burn_in = d["burn_in"].cast<int>();
  c.dT = d["dT"].cast<int>();
  c.temperature = d["temperature"].cast<float>();
  c.identity_bias = d["identity_bias"].cast<float>();
  c.seq_len = d["seq_len"].cast<int>();
  c.colour_wrap = d["colour_wrap"].cast<bool>();
  c.score_frames = d["score_frames"].cast<int>();
  c.max_attempts = d["max_attempts"].cast<int>();
  pybind11::object band = d["band"];
  c.band = !band.is_none();
  if (c.band) {
    auto t = band.cast<std::pair<double, double>>();
    c.band_lower = t.first;
    c.band_upper = t.second;
  }
  nca::check(c);
  return c;
}
