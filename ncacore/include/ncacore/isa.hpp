// The CPU core's instruction-set paths: one binary holds a scalar path (any
// CPU) and, on x86-64, AVX2+FMA and AVX-512 paths, and runs the fastest one
// this CPU supports unless the environment variable NCALM_ISA names another.
// All paths give identical results; only their speed differs.
#pragma once
#include <string>
#include <vector>

namespace nca {

// The paths compiled into this build, slowest first: "scalar", then on
// x86-64 "avx2" and "avx512".
std::vector<std::string> compiled_isas();
// The compiled paths this CPU can run, slowest first.
std::vector<std::string> supported_isas();
// The path in use: NCALM_ISA's if set (its first use throws
// std::invalid_argument when NCALM_ISA names no path this CPU can run),
// else the last of supported_isas().
std::string active_isa();
// Run `name` from now on ("auto": the fastest supported); throws
// std::invalid_argument when it is not compiled or this CPU cannot run it.
void set_isa(const std::string& name);

}  // namespace nca
