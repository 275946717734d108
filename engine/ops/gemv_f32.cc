// fp32 and bf16 decoding GEMV over weight panels (see gemv.h), written once over the portable
// vector type of simd.h, so the same source serves AVX-512, AVX2 and SSE builds. Every output
// is one fma chain over the inputs in order, kept in one lane of one accumulator: a tile of P
// panels x S activation rows holds P * (16 / kLanes) x S accumulators, loads each weight vector
// once for S rows and broadcasts each activation value once for P panels. Whatever the tile, the
// chain of an output is the same, so an output's bits depend only on its weight row, its
// activation row and `cols` (batched sessions equal themselves decoded alone; threads agree).
// bf16 panels are widened exactly, lane by lane, before the same fmas, so a bf16 product equals
// the fp32 product on the widened weights bit for bit.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "engine/ops/gemv.h"
#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

using simd::kLanes;
using simd::LoadU;
using simd::VecF;

typedef uint16_t VecH __attribute__((vector_size(kLanes * sizeof(uint16_t))));
typedef uint32_t VecU __attribute__((vector_size(kLanes * sizeof(uint32_t))));

inline VecF LoadW(const float* p) { return LoadU(p); }
inline VecF LoadW(const uint16_t* p) {
#if defined(__AVX512F__)
  // GCC 12 widens the generic form below as two 8-lane halves joined by extract/insert (7
  // instructions a vector instead of 2); the masked form avoids its -Wmaybe-uninitialized.
  const __m512i wide = _mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  VecU u;
  std::memcpy(&u, &wide, sizeof(u));
  u <<= 16;
  VecF f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
#else
  VecH h;
  std::memcpy(&h, p, sizeof(h));
  const VecU u = __builtin_convertvector(h, VecU) << 16;
  VecF f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
#endif
}

inline constexpr int kVecsPerPanel = static_cast<int>(kPanelRows) / kLanes;  // 1 AVX-512, 2 AVX2, 4 SSE
static_assert(kVecsPerPanel * kLanes == kPanelRows);
// Tile limits, so that accumulators, weight vectors and one broadcast fit the register file:
// AVX-512 (32 registers) 4 panels x 6 rows = 24 accumulators + 4 + 1; AVX2 (16) 1 panel (2
// vectors) x 6 rows = 12 + 2 + 1; SSE (16) 1 panel (4 vectors) x 2 rows = 8 + 4 + 1. In a
// micro-benchmark (AVX-512, 32000 x 288, 32 rows) 4 x 6 ran 1.1x faster than 2 x 12 and 1.3x
// faster than 1 x 16; at batch 1, 4 panels in flight ran 1.3x faster than 8.
inline constexpr int kMaxPanels = kLanes == 16 ? 4 : 1;
inline constexpr int kMaxRows = kLanes == 4 ? 2 : 6;

// Batch-1 prefetching (PanelTile): bf16 only. fp32 lost with it, in the row-major layout
// (0.85-0.94x) and again on panels (0.73-0.89x at 2 threads); for bf16 the next group's own
// start measured best (1.0-1.1x against 8 KB past it; BENCHMARKS.md, issue 11, tenth session).
template <typename T>
inline constexpr bool kPrefetched = std::is_same_v<T, uint16_t>;

// y[s * ldy + o] for the P panels at w (panel q at w + q * cols * kPanelRows, rows o from the
// tile's first) and the S activation rows at x (ldx apart); only the tile's first `valid`
// rows are stored (a last panel's padding, a range's end). kAhead: the caller's range goes on
// past this group, so prefetching it helps this thread (a range's last group prefetched a group
// that another thread then read, from its own cold cache).
template <typename T, int P, int S, bool kAhead>
[[gnu::always_inline]] inline void PanelTile(const T* w, int64_t cols, const float* x, int64_t ldx, float* y,
                                             int64_t ldy, int64_t valid) {
  constexpr int V = P * kVecsPerPanel;
  constexpr int64_t kStepBytes = P * kPanelRows * sizeof(T);  // weight bytes per input, all P panels
  // Batch 1 of a prefetched format: the P panels are P streams, which the hardware prefetcher
  // alone followed poorly (bf16 0.75x the row-major kernel's tokens). A second pointer sweeps
  // the next group's memory linearly, kStepBytes per input, so every line of that group is
  // asked for before its first read.
  // The arithmetic never changes whatever is prefetched.
  const char* ahead = reinterpret_cast<const char*>(w + P * kPanelRows * cols);  // the next group
  VecF acc[V][S] = {};
  for (int64_t i = 0; i < cols; ++i) {
    if constexpr (S == 1 && kPrefetched<T> && kAhead) {
#pragma GCC unroll 4
      for (int64_t b = 0; b < kStepBytes; b += 64) __builtin_prefetch(ahead + i * kStepBytes + b);
    }
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
      const int64_t left = valid - int64_t{j} * kLanes;
      if (left >= kLanes) {
        simd::StoreU(y + s * ldy + j * kLanes, acc[j][s]);
      } else if (left > 0) {
        simd::StorePartial(y + s * ldy + j * kLanes, acc[j][s], left);
      }
    }
  }
}

// m (<= kMaxRows) activation rows over one group of P panels, as one tile of S = m rows.
template <typename T, int P, int S = kMaxRows>
[[gnu::always_inline]] inline void RowTile(const T* w, int64_t cols, const float* x, int64_t m, float* y,
                                           int64_t ldy, int64_t valid, bool ahead) {
  if constexpr (S > 1) {
    if (m < S) return RowTile<T, P, S - 1>(w, cols, x, m, y, ldy, valid, ahead);
    PanelTile<T, P, S, false>(w, cols, x, cols, y, ldy, valid);
  } else if (ahead) {
    PanelTile<T, P, S, true>(w, cols, x, cols, y, ldy, valid);
  } else {
    PanelTile<T, P, S, false>(w, cols, x, cols, y, ldy, valid);
  }
}

// The rows go in ceil(n / kMaxRows) tiles of nearly equal size (32 rows: 6, 6, 5, 5, 5, 5, not
// five of 6 and one of 2, whose 8 accumulators wait on loads): any split gives the same bits.
template <typename T, int P>
void PanelGroup(const T* w, int64_t cols, const float* x, int64_t n, float* y, int64_t ldy, int64_t valid,
                bool ahead) {
  const int64_t tiles = (n + kMaxRows - 1) / kMaxRows;
  for (int64_t t = 0, r = 0; t < tiles; ++t) {
    const int64_t m = n / tiles + (t < n % tiles ? 1 : 0);
    RowTile<T, P>(w, cols, x + r * cols, m, y + r * ldy, ldy, valid, ahead);
    r += m;
  }
}

// Panels [begin, end) of a matrix of `rows` rows, in groups of kMaxPanels, then 2, then 1.
template <typename T, int P = kMaxPanels>
[[gnu::always_inline]] inline void PanelRange(const T* w, int64_t rows, int64_t cols, const float* x, int64_t n,
                                              int64_t begin, int64_t end, float* y, int64_t ldy) {
  for (; end - begin >= P; begin += P) {
    const int64_t o0 = begin * kPanelRows, valid = std::min(rows, o0 + P * kPanelRows) - o0;
    PanelGroup<T, P>(w + o0 * cols, cols, x, n, y + o0, ldy, valid, begin + P < end);
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
      Panels(w.bf16, w.rows, w.cols, x.x, x.n, begin, end, y, ldy);
      return;
    case WeightFormat::kQ8:
      GemvBlocksQ8(w, x, begin, end, y, ldy);
      return;
  }
}

}  // namespace lanlm::engine
