// Precision names; see bf16.h.
#include "engine/ops/bf16.h"

namespace lanlm::engine {

const char* PrecisionName(Precision p) { return p == Precision::kBf16 ? "bf16" : "fp32"; }

bool ParsePrecision(std::string_view name, Precision* out) {
  if (name == "fp32") {
    *out = Precision::kFp32;
  } else if (name == "bf16") {
    *out = Precision::kBf16;
  } else {
    return false;
  }
  return true;
}

}  // namespace lanlm::engine
