// Numbers as text for messages and metadata: printf's %g with a chosen number of significant
// digits ("0.001", "1e+06", "0.30000001"). One definition for the engine, protos and programs.
#pragma once

#include <cstdio>
#include <string>

namespace lanlm::engine {

// x with `digits` significant digits (6: printf's plain %g; 9 round-trips any float).
inline std::string NumberText(double x, int digits = 6) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.*g", digits, x);
  return buf;
}

}  // namespace lanlm::engine
