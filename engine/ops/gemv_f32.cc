// fp32 decoding GEMV over weight panels (see gemv.h), written once over the portable vector type
// of simd.h, so the same source serves AVX-512, AVX2 and SSE builds (bf16: gemv_bf16.cc, q8:
// quant_q8.cc and the gemv_q8 kernels). Every output
// is one fma chain over the inputs in order, kept in one lane of one accumulator: a tile of P
// panels x S activation rows holds P * (16 / kLanes) x S accumulators, loads each weight vector
// once for S rows and broadcasts each activation value once for P panels. Whatever the tile, the
// chain of an output is the same, so an output's bits depend only on its weight row, its
// activation row and `cols` (batched sessions equal themselves decoded alone; threads agree).
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "engine/ops/gemv.h"
#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

using simd::kLanes;
using simd::LoadU;
using simd::VecF;

inline VecF LoadW(const float* p) { return LoadU(p); }

inline constexpr int kVecsPerPanel = static_cast<int>(kPanelRows) / kLanes;  // 1 AVX-512, 2 AVX2, 4 SSE
static_assert(kVecsPerPanel * kLanes == kPanelRows);
// Tile limits, so that accumulators, weight vectors and one broadcast fit the register file:
// AVX-512 (32 registers) 4 panels x 6 rows = 24 accumulators + 4 + 1; AVX2 (16) 1 panel (2
// vectors) x 6 rows = 12 + 2 + 1; SSE (16) 1 panel (4 vectors) x 2 rows = 8 + 4 + 1. In a
// micro-benchmark (AVX-512, 32000 x 288, 32 rows) 4 x 6 ran 1.1x faster than 2 x 12 and 1.3x
// faster than 1 x 16; at batch 1, 4 panels in flight ran 1.3x faster than 8.
inline constexpr int kMaxPanels = kLanes == 16 ? 4 : 1;
inline constexpr int kMaxRows = kLanes == 4 ? 2 : 6;

// y[s * ldy + o] for the P panels at w (panel q at w + q * cols * kPanelRows, rows o from the
// tile's first) and the S activation rows at x (ldx apart); only the tile's first `valid`
// rows are stored (a last panel's padding, a range's end). No software prefetch: fp32 lost with
// it, in the row-major layout (0.85-0.94x) and again on panels (0.73-0.89x at 2 threads).
template <typename T, int P, int S>
[[gnu::always_inline]] inline void PanelTile(const T* w, int64_t cols, const float* x, int64_t ldx, float* y,
                                             int64_t ldy, int64_t valid) {
  constexpr int V = P * kVecsPerPanel;
  VecF acc[V][S] = {};
  for (int64_t i = 0; i < cols; ++i) {
    VecF wv[V];
#pragma GCC unroll 8
    for (int j = 0; j < V; ++j) {
      wv[j] = LoadW(w + ((j / kVecsPerPanel) * cols + i) * kPanelRows + (j % kVecsPerPanel) * kLanes);
    }
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      const VecF xb = simd::Splat(x[s * ldx + i]);
#pragma GCC unroll 8
      for (int j = 0; j < V; ++j) acc[j][s] = simd::Fma(acc[j][s], wv[j], xb);
    }
  }
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s) {
#pragma GCC unroll 8
    for (int j = 0; j < V; ++j) {
      simd::StoreUpTo(y + s * ldy + j * kLanes, acc[j][s], valid - int64_t{j} * kLanes);
    }
  }
}

// m (<= kMaxRows) activation rows over one group of P panels, as one tile of S = m rows.
template <typename T, int P, int S = kMaxRows>
[[gnu::always_inline]] inline void RowTile(const T* w, int64_t cols, const float* x, int64_t m, float* y,
                                           int64_t ldy, int64_t valid) {
  if constexpr (S > 1) {
    if (m < S) return RowTile<T, P, S - 1>(w, cols, x, m, y, ldy, valid);
  }
  PanelTile<T, P, S>(w, cols, x, cols, y, ldy, valid);
}

// The rows go in ceil(n / kMaxRows) tiles of nearly equal size (32 rows: 6, 6, 5, 5, 5, 5, not
// five of 6 and one of 2, whose 8 accumulators wait on loads): any split gives the same bits.
template <typename T, int P>
void PanelGroup(const T* w, int64_t cols, const float* x, int64_t n, float* y, int64_t ldy, int64_t valid) {
  const int64_t tiles = (n + kMaxRows - 1) / kMaxRows;
  for (int64_t t = 0, r = 0; t < tiles; ++t) {
    const int64_t m = n / tiles + (t < n % tiles ? 1 : 0);
    RowTile<T, P>(w, cols, x + r * cols, m, y + r * ldy, ldy, valid);
    r += m;
  }
}

// Panels [begin, end) of a matrix of `rows` rows, in groups of kMaxPanels, then 2, then 1.
template <typename T, int P = kMaxPanels>
[[gnu::always_inline]] inline void PanelRange(const T* w, int64_t rows, int64_t cols, const float* x, int64_t n,
                                              int64_t begin, int64_t end, float* y, int64_t ldy) {
  for (; end - begin >= P; begin += P) {
    const int64_t o0 = begin * kPanelRows, valid = std::min(rows, o0 + P * kPanelRows) - o0;
    PanelGroup<T, P>(w + o0 * cols, cols, x, n, y + o0, ldy, valid);
  }
  if constexpr (P > 1) PanelRange<T, P / 2>(w, rows, cols, x, n, begin, end, y, ldy);
}

template <typename T>
[[gnu::noipa]] void Panels(const T* w, int64_t rows, int64_t cols, const float* x, int64_t n, int64_t begin,
                           int64_t end, float* y, int64_t ldy) {
  PanelRange<T>(w, rows, cols, x, n, begin, end, y, ldy);
}

}  // namespace

const char* WeightFormatName(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32: return "fp32";
    case WeightFormat::kBf16: return "bf16";
    case WeightFormat::kQ8: return "q8";
  }
  return "?";
}

void GemvBlock(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy) {
  GemvBlocks(w, x, block, block + 1, y, ldy);
}

void GemvBlocks(const WeightMatrix& w, const GemvInput& x, int64_t begin, int64_t end, float* y, int64_t ldy) {
  switch (w.format) {
    case WeightFormat::kF32:
      Panels(w.f32, w.rows, w.cols, x.x, x.n, begin, end, y, ldy);
      return;
    case WeightFormat::kBf16:
      GemvBlocksBf16(w, x, begin, end, y, ldy);
      return;
    case WeightFormat::kQ8:
      GemvBlocksQ8(w, x, begin, end, y, ldy);
      return;
  }
}

}  // namespace lanlm::engine
