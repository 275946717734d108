// The seed brief's fast math. FastExp clamps its input to [-88, 88] so expf never overflows
// to inf or underflows to a denormal; FastTanhPade is the seed's Padé form, whose true max
// error on [-3, 3] is about 0.024 (not the seed's claimed 0.001; tests/engine measure it).
#pragma once

#include <cmath>

namespace lanlm::engine {

inline float FastExp(float x) {
  x = x < -88.0f ? -88.0f : (x > 88.0f ? 88.0f : x);
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
