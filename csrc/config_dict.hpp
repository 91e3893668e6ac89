// nca::Config bound as ncalm._core.Config: built from the dict that
// ncalm.nca.config.NCAConfig.core_dict() gives and checked once, here, by the
// core (nca::check). Every entry point takes the bound object; a plain dict
// still converts implicitly (checked at each call), for tests and scripts.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "ncacore/config.hpp"
#include "ncacore/text.hpp"

// A Python float as the float32 the generator computes in; one past float32's range is refused by name
// (narrowing would turn it into inf and the message would show inf, not what the user typed).
inline float float32_setting(const pybind11::dict& d, const char* name) {
  const double v = d[name].cast<double>();
  if (std::isfinite(v) && std::fabs(v) > 3.4028234663852886e38)
    throw std::invalid_argument(std::string(name) + "=" + nca::num(v) +
                                " does not fit the float32 the generator computes in");
  return float(v);
}

inline nca::Config config_from_dict(const pybind11::dict& d) {
  nca::Config c;
  c.height = d["height"].cast<int>();
  c.width = d["width"].cast<int>();
  c.colors = d["colors"].cast<int>();
  c.patch = d["patch"].cast<int>();
  c.burn_in = d["burn_in"].cast<int>();
  c.dT = d["dT"].cast<int>();
  c.temperature = float32_setting(d, "temperature");
  c.identity_bias = float32_setting(d, "identity_bias");
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

inline void bind_config(pybind11::module_& m) {
  pybind11::class_<nca::Config>(m, "Config", "An NCA config, checked once by the core when built.")
      .def(pybind11::init(&config_from_dict), pybind11::arg("settings"))
      .def_property_readonly("vocab", &nca::Config::vocab)
      .def_property_readonly("frame_len", &nca::Config::frame_len);
  pybind11::implicitly_convertible<pybind11::dict, nca::Config>();
}
