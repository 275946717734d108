// NaN/Inf tests on the bit pattern: -ffast-math lets the compiler fold std::isnan/isinf to
// false, so code that must reject non-finite values (loaded tensors, gradients) uses these.
#pragma once

#include <cstdint>
#include <cstring>

namespace lanlm {

inline bool IsFiniteBits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return (u & 0x7f800000u) != 0x7f800000u;
}

// Index of the first non-finite element of x[0, n), or -1 when all are finite.
inline int64_t FirstNonFinite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!IsFiniteBits(x[i])) return i;
  }
  return -1;
}

}  // namespace lanlm
