// bf16 decoding GEMV over pair panels (gemv.h) under the bf16 contract (bf16.h): two kernels,
// the same bits.
//   - native: one VDPBF16PS per pair of inputs and panel of 16 rows, compiled into every build
//     through a per-function target attribute and chosen at run time where the CPU has
//     AVX512_BF16 (as the training GEMM, gemm_bf16.h, whose kernel choice it follows);
//   - emulated: on the build's vector width, each pair word split into its high half (the odd
//     input: the bits with the low 16 cleared) and its low half (shifted left by 16), then two
//     FMAs in the instruction's order, with FTZ/DAZ set for the call as the instruction implies.
// Each output's chain runs over the pairs in order in one lane of one accumulator, so its bits
// depend only on its weight row, its activation row and cols: not on the tile, the batch, the
// block range or the thread.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "engine/base/check.h"
#include "engine/ops/bf16_pack.h"
#include "engine/ops/gemm_bf16.h"
#include "engine/ops/gemv.h"
#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

#define LANLM_GEMV_BF16_NATIVE __attribute__((target("avx512f,avx512bf16")))

// Tiles: P panels x S activation rows. Native (32 zmm): 4 x 6 = 24 accumulators + 4 weight
// vectors + 1 broadcast; at batch 1, 4 panels (4 independent chains).
constexpr int kNativePanels = 4;
constexpr int kNativeRows = 6;

// The tile's y[s * ldy + o] for the first `valid` rows o; acc[p][s] holds panel p's 16 outputs.
template <int P, int S>
[[gnu::always_inline]] LANLM_GEMV_BF16_NATIVE inline void NativeTile(const uint32_t* w, int64_t pairs,
                                                                     const uint32_t* x, int64_t ldx, float* y,
                                                                     int64_t ldy, int64_t valid) {
  __m512 acc[P][S];
  for (int p = 0; p < P; ++p) {
    for (int s = 0; s < S; ++s) acc[p][s] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < pairs; ++k) {
    __m512bh wv[P];
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) wv[p] = (__m512bh)_mm512_loadu_si512(w + (p * pairs + k) * kPanelRows);
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      const __m512bh xb = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[s * ldx + k]));
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p) acc[p][s] = _mm512_dpbf16_ps(acc[p][s], wv[p], xb);
    }
  }
  for (int s = 0; s < S; ++s) {
    for (int p = 0; p < P; ++p) {
      const int64_t left = valid - int64_t{p} * kPanelRows;
      if (left >= kPanelRows) {
        _mm512_storeu_ps(y + s * ldy + p * kPanelRows, acc[p][s]);
      } else if (left > 0) {
        _mm512_mask_storeu_ps(y + s * ldy + p * kPanelRows, static_cast<__mmask16>((1u << left) - 1), acc[p][s]);
      }
    }
  }
}

// The emulation on the build's vectors: a panel is kVecsPerPanel vectors. Tiles: AVX-512 4
// panels x 4 rows (16 accumulators + 8 widened halves + 2 broadcasts), AVX2 1 x 4 (8 + 4 + 2),
// SSE 1 x 1 (4 + 8 + 2). At batch 1 more panels, for more independent chains (each pair is two
// dependent FMAs): AVX-512 8 (8 + 16 + 2), AVX2 2 (4 + 8 + 2).
using simd::kLanes;
using simd::VecF;
typedef uint32_t VecU __attribute__((vector_size(kLanes * sizeof(uint32_t))));
constexpr int kVecsPerPanel = static_cast<int>(kPanelRows) / kLanes;
constexpr int kEmuPanels = kLanes == 16 ? 4 : 1;
constexpr int kEmuRows = kLanes == 4 ? 1 : 4;
constexpr int kEmuPanelsAlone = kLanes == 16 ? 8 : kLanes == 8 ? 2 : 1;

inline VecF Bits(VecU u) {
  VecF f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
inline float Bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
// Without FMA hardware simd::Fma is a product and a sum; the barrier after every sum keeps
// -ffast-math from reassociating the chain (the products are exact, so each sum then rounds as
// an FMA would).
inline void KeepOrder([[maybe_unused]] VecF& v) {
#if !defined(__FMA__) && !defined(__AVX512F__)
  __asm__("" : "+x"(v));
#endif
}

template <int P, int S>
[[gnu::always_inline]] inline void EmulatedTile(const uint32_t* w, int64_t pairs, const uint32_t* x, int64_t ldx,
                                                float* y, int64_t ldy, int64_t valid) {
  constexpr int V = P * kVecsPerPanel;
  VecF acc[V][S] = {};
  for (int64_t k = 0; k < pairs; ++k) {
    VecF odd[V], even[V];
#pragma GCC unroll 8
    for (int j = 0; j < V; ++j) {
      VecU u;
      std::memcpy(&u, w + ((j / kVecsPerPanel) * pairs + k) * kPanelRows + (j % kVecsPerPanel) * kLanes, sizeof(u));
      odd[j] = Bits(u & 0xFFFF0000u);
      even[j] = Bits(u << 16);
    }
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      const uint32_t xw = x[s * ldx + k];
      const VecF xo = simd::Splat(Bits(xw & 0xFFFF0000u)), xe = simd::Splat(Bits(xw << 16));
#pragma GCC unroll 8
      for (int j = 0; j < V; ++j) {
        acc[j][s] = simd::Fma(acc[j][s], odd[j], xo);
        KeepOrder(acc[j][s]);
        acc[j][s] = simd::Fma(acc[j][s], even[j], xe);
        KeepOrder(acc[j][s]);
      }
    }
  }
  for (int s = 0; s < S; ++s) {
    for (int j = 0; j < V; ++j) {
      simd::StoreUpTo(y + s * ldy + j * kLanes, acc[j][s], valid - int64_t{j} * kLanes);
    }
  }
}

template <int P, int S>
struct NativeTileFn {
  LANLM_GEMV_BF16_NATIVE static void Run(const uint32_t* w, int64_t pairs, const uint32_t* x, int64_t ldx, float* y,
                                         int64_t ldy, int64_t valid) {
    NativeTile<P, S>(w, pairs, x, ldx, y, ldy, valid);
  }
};
template <int P, int S>
struct EmulatedTileFn {
  static void Run(const uint32_t* w, int64_t pairs, const uint32_t* x, int64_t ldx, float* y, int64_t ldy,
                  int64_t valid) {
    EmulatedTile<P, S>(w, pairs, x, ldx, y, ldy, valid);
  }
};

// m (<= S) activation rows over one group of P panels, as one tile of m rows.
template <int P, int S, template <int, int> class Tile>
[[gnu::always_inline]] inline void RowTile(const uint32_t* w, int64_t pairs, const uint32_t* x, int64_t m, float* y,
                                           int64_t ldy, int64_t valid) {
  if constexpr (S > 1) {
    if (m < S) return RowTile<P, S - 1, Tile>(w, pairs, x, m, y, ldy, valid);
  }
  Tile<P, S>::Run(w, pairs, x, pairs, y, ldy, valid);
}

// One group of P panels against n activation rows, in ceil(n / kRows) tiles of nearly equal
// size (any split gives the same bits).
template <int P, int kRows, template <int, int> class Tile>
[[gnu::always_inline]] inline void Group(const uint32_t* w, int64_t pairs, const uint32_t* x, int64_t n, float* y,
                                         int64_t ldy, int64_t valid) {
  const int64_t tiles = (n + kRows - 1) / kRows;
  for (int64_t t = 0, r = 0; t < tiles; ++t) {
    const int64_t m = n / tiles + (t < n % tiles ? 1 : 0);
    RowTile<P, kRows, Tile>(w, pairs, x + r * pairs, m, y + r * ldy, ldy, valid);
    r += m;
  }
}

// Panels [begin, end) in groups of P, then P / 2, ... 1.
template <int P, int kRows, template <int, int> class Tile>
void Range(const WeightMatrix& w, const GemvInput& x, int64_t begin, int64_t end, float* y, int64_t ldy) {
  const int64_t pairs = (w.cols + 1) / 2;
  for (; end - begin >= P; begin += P) {
    const int64_t o0 = begin * kPanelRows, valid = std::min(w.rows, o0 + P * kPanelRows) - o0;
    Group<P, kRows, Tile>(w.bf16 + begin * kPanelRows * pairs, pairs, x.xp, x.n, y + o0, ldy, valid);
  }
  if constexpr (P > 1) Range<P / 2, kRows, Tile>(w, x, begin, end, y, ldy);
}

[[gnu::noipa]] LANLM_GEMV_BF16_NATIVE void NativeBlocks(const WeightMatrix& w, const GemvInput& x, int64_t begin,
                                                        int64_t end, float* y, int64_t ldy) {
  Range<kNativePanels, kNativeRows, NativeTileFn>(w, x, begin, end, y, ldy);
}

[[gnu::noipa]] void EmulatedBlocks(const WeightMatrix& w, const GemvInput& x, int64_t begin, int64_t end, float* y,
                                   int64_t ldy) {
  const gemm_bf16::FlushDenormals flush;
  if (x.n == 1) {
    Range<kEmuPanelsAlone, 1, EmulatedTileFn>(w, x, begin, end, y, ldy);
  } else {
    Range<kEmuPanels, kEmuRows, EmulatedTileFn>(w, x, begin, end, y, ldy);
  }
}

}  // namespace

void GemvBlocksBf16(const WeightMatrix& w, const GemvInput& x, int64_t begin, int64_t end, float* y, int64_t ldy) {
  LANLM_CHECK(x.xp != nullptr, "bf16 GEMV needs the activations as bf16 pairs (PackBf16Activations)");
  if (gemm_bf16::ActiveKernel() == gemm_bf16::Kernel::kNative) {
    NativeBlocks(w, x, begin, end, y, ldy);
  } else {
    EmulatedBlocks(w, x, begin, end, y, ldy);
  }
}

const char* Bf16GemvKernelName() {
  if (gemm_bf16::ActiveKernel() == gemm_bf16::Kernel::kNative) return "avx512bf16";
#if defined(__FMA__) || defined(__AVX512F__)
  return "emulated-fma";
#else
  return "emulated";
#endif
}

}  // namespace lanlm::engine
