// The seed brief's fast math. FastExp clamps its input to [-87, 88] so expf never overflows
// to inf (e^88 = 1.65e38) or underflows to a denormal (the seed's -88 would: e^-88 = 6.1e-39 is
// below FLT_MIN = 1.18e-38, and -ffast-math flushes it to 0); FastTanhPade is the seed's Padé
// form, whose true max error on [-3, 3] is 0.0235 at |x| = 1.57 (not the seed's claimed 0.001;
// tests/engine/fast_math_test.cc measures it).
#pragma once

#include <cmath>

namespace lanlm::engine {

inline float FastExp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  return std::exp(x);
}

// x (27 + x²) / (27 + 9 x²), saturating to ±1 outside [-3, 3].
inline float FastTanhPade(float x) {
  if (x <= -3.0f) return -1.0f;
  if (x >= 3.0f) return 1.0f;
  const float x2 = x * x;
  return x * (27.0f + x2) / (27.0f + 9.0f * x2);
}

inline float Sigmoid(float x) { return 1.0f / (1.0f + FastExp(-x)); }

}  // namespace lanlm::engine
