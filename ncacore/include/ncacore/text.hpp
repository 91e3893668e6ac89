// Numbers in messages, as an ostream prints them by default (%g for floating
// point), without iostreams. Formatting a number through an ostringstream
// crashed in a build on a lent H100 (gcc 13) whose module carried its own
// copy of libstdc++ with the iostream locale never set up; snprintf and
// to_string need no locale object.
#pragma once
#include <cstdio>
#include <string>
#include <type_traits>

namespace nca {

template <typename T>
std::string num(T v) {
  static_assert(std::is_arithmetic_v<T>, "num() formats numbers");
  if constexpr (std::is_floating_point_v<T>) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
    return buf;
  } else {
    return std::to_string(v);
  }
}

}  // namespace nca
