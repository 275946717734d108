// The fp32 / bf16 panel layouts of gemv.h (packing, unpacking) and the plain C++ arithmetic the
// panel kernels equal bit for bit; bf16 rounding.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "engine/ops/bf16.h"
#include "engine/ops/bf16_pack.h"
#include "engine/ops/gemv.h"
#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

// fp32 panels: w[o, i] at ((o / 16) * cols + i) * 16 + o % 16.
void UnpackF32(const float* panels, int64_t cols, int64_t r0, int64_t r1, float* dst) {
  for (int64_t o = r0; o < r1; ++o) {
    const float* src = panels + (o / kPanelRows) * kPanelRows * cols + o % kPanelRows;
    float* row = dst + (o - r0) * cols;
    for (int64_t i = 0; i < cols; ++i) row[i] = src[i * kPanelRows];
  }
}

// bf16 pair panels: w[o, i] in the word ((o / 16) * pairs + i / 2) * 16 + o % 16, half i % 2.
void UnpackBf16(const uint32_t* panels, int64_t cols, int64_t r0, int64_t r1, float* dst) {
  const int64_t pairs = (cols + 1) / 2;
  for (int64_t o = r0; o < r1; ++o) {
    const uint32_t* src = panels + (o / kPanelRows) * kPanelRows * pairs + o % kPanelRows;
    float* row = dst + (o - r0) * cols;
    for (int64_t i = 0; i < cols; ++i) {
      row[i] = FloatFromBf16(static_cast<uint16_t>(src[(i / 2) * kPanelRows] >> (16 * (i % 2))));
    }
  }
}

}  // namespace

void PackPanels(const float* w, int64_t rows, int64_t cols, float* panels) {
  const int64_t n_panels = (rows + kPanelRows - 1) / kPanelRows;
  for (int64_t p = 0; p < n_panels; ++p) {
    float* dst = panels + p * kPanelRows * cols;
    for (int64_t j = 0; j < kPanelRows; ++j) {
      const int64_t o = p * kPanelRows + j;
      for (int64_t i = 0; i < cols; ++i) dst[i * kPanelRows + j] = o < rows ? w[o * cols + i] : 0.0f;
    }
  }
}

void PackPanels(const float* w, int64_t rows, int64_t cols, uint32_t* panels) {
  // A panel is the training GEMM's pair packing of 16 lanes (rows) over a reduction of cols.
  const int64_t n_panels = (rows + kPanelRows - 1) / kPanelRows, pairs = (cols + 1) / 2;
  for (int64_t p = 0; p < n_panels; ++p) {
    const int valid = static_cast<int>(std::min<int64_t>(kPanelRows, rows - p * kPanelRows));
    gemm_bf16::PackPairs({w + p * kPanelRows * cols, cols, 1, valid}, cols, static_cast<int>(kPanelRows),
                         panels + p * kPanelRows * pairs);
  }
}

void PackBf16Activations(const float* x, int64_t n, int64_t cols, uint32_t* xp) {
  const int64_t pairs = (cols + 1) / 2;
  for (int64_t r = 0; r < n; ++r) gemm_bf16::PackPairs({x + r * cols, 0, 1, 1}, cols, 1, xp + r * pairs);
}

void WidenRows(const WeightMatrix& w, int64_t r0, int64_t r1, float* dst) {
  if (w.format == WeightFormat::kF32) {
    UnpackF32(w.f32, w.cols, r0, r1, dst);
  } else if (w.format == WeightFormat::kBf16) {
    UnpackBf16(w.bf16, w.cols, r0, r1, dst);
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

float GemvReferenceBf16(const float* w_row, const float* x, int64_t cols) {
  auto at = [&](const float* v, int64_t i) { return i < cols ? RoundToBf16(v[i]) : 0.0f; };
  float acc = 0.0f;
  for (int64_t i = 0; i < cols; i += 2) {
    for (int64_t k : {i + 1, i}) {  // the odd index first, as VDPBF16PS
#if defined(__FMA__) || defined(__AVX512F__)
      acc = std::fma(at(w_row, k), at(x, k), acc);
#else
      acc = simd::Opaque(acc + at(w_row, k) * at(x, k));  // the product is exact
#endif
    }
  }
  return acc;
}

}  // namespace lanlm::engine
