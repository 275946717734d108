// The fp32 / bf16 panel layout of gemv.h (packing, unpacking) and the plain C++ arithmetic the
// panel kernels equal bit for bit; bf16 rounding.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/ops/gemv.h"
#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

inline float ToStored(float v, float) { return v; }
inline uint16_t ToStored(float v, uint16_t) { return FloatToBf16(v); }
inline float Widen(float v) { return v; }
inline float Widen(uint16_t v) { return Bf16ToFloat(v); }

template <typename T>
void Pack(const float* w, int64_t rows, int64_t cols, T* panels) {
  const int64_t n_panels = (rows + kPanelRows - 1) / kPanelRows;
  for (int64_t p = 0; p < n_panels; ++p) {
    T* dst = panels + p * kPanelRows * cols;
    for (int64_t j = 0; j < kPanelRows; ++j) {
      const int64_t o = p * kPanelRows + j;
      for (int64_t i = 0; i < cols; ++i) dst[i * kPanelRows + j] = o < rows ? ToStored(w[o * cols + i], T{}) : T{};
    }
  }
}

template <typename T>
void Unpack(const T* panels, int64_t cols, int64_t r0, int64_t r1, float* dst) {
  for (int64_t o = r0; o < r1; ++o) {
    const T* src = panels + (o / kPanelRows) * kPanelRows * cols + o % kPanelRows;
    float* row = dst + (o - r0) * cols;
    for (int64_t i = 0; i < cols; ++i) row[i] = Widen(src[i * kPanelRows]);
  }
}

}  // namespace

void PackPanels(const float* w, int64_t rows, int64_t cols, float* panels) { Pack(w, rows, cols, panels); }
void PackPanels(const float* w, int64_t rows, int64_t cols, uint16_t* panels) { Pack(w, rows, cols, panels); }

void WidenRows(const WeightMatrix& w, int64_t r0, int64_t r1, float* dst) {
  if (w.format == WeightFormat::kF32) {
    Unpack(w.f32, w.cols, r0, r1, dst);
  } else if (w.format == WeightFormat::kBf16) {
    Unpack(w.bf16, w.cols, r0, r1, dst);
  } else {
    DequantizeQ8Weights(w.q8 + r0 * w.cols, w.scale + r0 * w.cols / kQ8Group, (r1 - r0) * w.cols, dst);
  }
}

float GemvReference(const float* w_row, const float* x, int64_t cols) {
  float acc = 0.0f;
  for (int64_t i = 0; i < cols; ++i) {
#if defined(__FMA__) || defined(__AVX512F__)
    acc = std::fma(w_row[i], x[i], acc);
#else
    // simd::Fma without FMA hardware: a product, then a sum, kept in order (-ffast-math would
    // otherwise split this reduction into vector partial sums).
    acc = simd::Opaque(acc + w_row[i] * x[i]);
#endif
  }
  return acc;
}

uint16_t FloatToBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace lanlm::engine
