#include "ncacore/isa.hpp"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include "kernels.hpp"

namespace nca {

namespace {

const Kernels* const kPaths[] = {
    &kScalarKernels,
#if defined(NCA_X86_KERNELS)
    &kAvx2Kernels,
    &kAvx512Kernels,
#endif
};

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// The path `name` names for `setting` (NCALM_ISA or the isa argument).
const Kernels& choose(const std::string& name, const char* setting) {
  if (name.empty() || name == "auto") {
    for (auto it = std::rbegin(kPaths); it != std::rend(kPaths); ++it)
      if ((*it)->supported()) return **it;
  }
  for (const Kernels* k : kPaths) {
    if (name != k->name) continue;
    if (!k->supported())
      throw std::invalid_argument(std::string(setting) + "='" + name + "': this CPU cannot run it (it runs " +
                                  join(supported_isas()) + ")");
    return *k;
  }
  throw std::invalid_argument(std::string(setting) + "='" + name + "' is not a compiled path (allowed: auto, " +
                              join(compiled_isas()) + ")");
}

std::atomic<const Kernels*> active{nullptr};

}  // namespace

const Kernels& kernels() {
  const Kernels* k = active.load(std::memory_order_acquire);
  if (k == nullptr) {  // first use: racing threads all pick the same path
    const char* env = std::getenv("NCALM_ISA");
    k = &choose(env ? env : "", "NCALM_ISA");
    active.store(k, std::memory_order_release);
  }
  return *k;
}

std::vector<std::string> compiled_isas() {
  std::vector<std::string> names;
  for (const Kernels* k : kPaths) names.push_back(k->name);
  return names;
}

std::vector<std::string> supported_isas() {
  std::vector<std::string> names;
  for (const Kernels* k : kPaths)
    if (k->supported()) names.push_back(k->name);
  return names;
}

std::string active_isa() { return kernels().name; }

void set_isa(const std::string& name) { active.store(&choose(name, "isa"), std::memory_order_release); }

}  // namespace nca
