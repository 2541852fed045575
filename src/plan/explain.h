// The planner's --explain lines, shared by the device (memory_model.cpp) and host (host_memory.cpp)
// memory models: "<name> = <formula with numbers> = <bytes> B = <x.xxx> GiB". Private to plan/.
#pragma once

#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>

#include "ftdist/core/bytes.h"

namespace ftdist::plan {

inline std::string explain_line(const std::string& name, const std::string& formula, uint64_t bytes) {
  char gib[64];
  std::snprintf(gib, sizeof(gib), "%.3f GiB", double(bytes) / double(kGiB));
  return name + " = " + formula + " = " + std::to_string(bytes) + " B = " + gib;
}

// A number as the formulas print it (shortest form: 0.375, 16, 1e-06).
inline std::string explain_num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace ftdist::plan
