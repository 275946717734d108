// fp32 and bf16 decoding GEMV (see gemv.h), written once over the portable vector type of
// simd.h, so the same source serves AVX-512, AVX2 and SSE builds. Every row keeps four
// accumulators, summed and reduced in a fixed order at the end, so a row's result depends only
// on its values and `cols`. bf16 rows are widened exactly, lane by lane, before the same FMAs, so a
// bf16 product equals the fp32 product on the widened weights bit for bit.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "engine/ops/gemv.h"
#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

using simd::kLanes;
using simd::LoadPartial;
using simd::LoadU;
using simd::VecF;

typedef uint16_t VecH __attribute__((vector_size(kLanes * sizeof(uint16_t))));
typedef uint32_t VecU __attribute__((vector_size(kLanes * sizeof(uint32_t))));

inline VecF LoadW(const float* p) { return LoadU(p); }
inline VecF LoadW(const uint16_t* p) {
  VecH h;
  std::memcpy(&h, p, sizeof(h));
  const VecU u = __builtin_convertvector(h, VecU) << 16;
  VecF f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
inline VecF LoadWPartial(const float* p, int64_t n) { return LoadPartial(p, n); }
inline VecF LoadWPartial(const uint16_t* p, int64_t n) {
  uint16_t tmp[kLanes] = {};
  std::memcpy(tmp, p, static_cast<size_t>(n) * sizeof(uint16_t));
  return LoadW(tmp);
}

// w · x over n values: four accumulators (vectors i mod 4 of the row; with two the FMA
// latency chain, not memory, limited rows already in cache), summed pairwise and reduced in a
// fixed order, as simd::Dot does. The chains go through simd::Fma so -ffast-math cannot
// reassociate them differently in the fp32 and bf16 instantiations (bf16 must equal fp32 on
// the widened weights bit for bit).
template <typename T>
[[gnu::always_inline]] inline float DotRow(const T* w, const float* x, int64_t n) {
  VecF a0 = {}, a1 = {}, a2 = {}, a3 = {};
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    a0 = simd::Fma(a0, LoadW(w + i), LoadU(x + i));
    a1 = simd::Fma(a1, LoadW(w + i + kLanes), LoadU(x + i + kLanes));
    a2 = simd::Fma(a2, LoadW(w + i + 2 * kLanes), LoadU(x + i + 2 * kLanes));
    a3 = simd::Fma(a3, LoadW(w + i + 3 * kLanes), LoadU(x + i + 3 * kLanes));
  }
  for (; i + kLanes <= n; i += kLanes) a0 = simd::Fma(a0, LoadW(w + i), LoadU(x + i));
  if (i < n) a1 = simd::Fma(a1, LoadWPartial(w + i, n - i), LoadPartial(x + i, n - i));
  return simd::ReduceAdd((a0 + a1) + (a2 + a3));
}

// DotRow for S activation rows (x rows `cols` apart) against one weight row at once: each
// weight vector is loaded once and used S times, and every output keeps DotRow's four
// accumulators, FMA order and final reduction, so each result equals DotRow's bit for bit.
// S = 3 keeps 12 accumulators, the weight vector and one activation vector in the 16 AVX2
// registers (4 loads per 3 FMAs instead of 2 per FMA).
template <int S>
[[gnu::always_inline]] inline void DotRows(const float* w, const float* x, int64_t n, float* y, int64_t ldy) {
  VecF a[S][4] = {};
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const VecF wv = LoadU(w + i + j * kLanes);
#pragma GCC unroll 4
      for (int s = 0; s < S; ++s) a[s][j] = simd::Fma(a[s][j], wv, LoadU(x + s * n + i + j * kLanes));
    }
  }
  for (; i + kLanes <= n; i += kLanes) {
    const VecF wv = LoadU(w + i);
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s) a[s][0] = simd::Fma(a[s][0], wv, LoadU(x + s * n + i));
  }
  if (i < n) {
    const VecF wv = LoadPartial(w + i, n - i);
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s) a[s][1] = simd::Fma(a[s][1], wv, LoadPartial(x + s * n + i, n - i));
  }
#pragma GCC unroll 4
  for (int s = 0; s < S; ++s) y[s * ldy] = simd::ReduceAdd((a[s][0] + a[s][1]) + (a[s][2] + a[s][3]));
}

inline constexpr int64_t kSessionTile = 3;

// One activation row: one weight row at a time, streamed once from memory (one sequential
// stream measured faster than four interleaved rows when memory is the limit). Several
// activation rows (batched decoding, short prompts): the block's rows (widened once for bf16,
// exactly, so the products keep their bits) stay in L1 while tiles of kSessionTile activation
// rows pass over them, so each weight vector is read once per tile, not once per row.
template <typename T>
[[gnu::noipa]] void BlockRows(const T* w, int64_t rows, int64_t cols, const float* x, int64_t n, int64_t block,
                              float* y, int64_t ldy) {
  const int64_t o0 = block * kGemvRows, o1 = std::min(rows, o0 + kGemvRows);
  if (n == 1) {
    for (int64_t o = o0; o < o1; ++o) y[o] = DotRow(w + o * cols, x, cols);
    return;
  }
  const float* wide = nullptr;
  if constexpr (std::is_same_v<T, float>) {
    wide = w + o0 * cols;
  } else {
    thread_local std::vector<float> buf;
    float* dst = simd::Scratch(buf, (o1 - o0) * cols);
    for (int64_t i = 0; i < (o1 - o0) * cols; ++i) dst[i] = Bf16ToFloat(w[o0 * cols + i]);
    wide = dst;
  }
  for (int64_t r = 0; r < n; r += kSessionTile) {
    const float* xr = x + r * cols;
    for (int64_t o = o0; o < o1; ++o) {
      const float* row = wide + (o - o0) * cols;
      float* out = y + r * ldy + o;
      switch (std::min(kSessionTile, n - r)) {
        case 3: DotRows<3>(row, xr, cols, out, ldy); break;
        case 2: DotRows<2>(row, xr, cols, out, ldy); break;
        default: *out = DotRow(row, xr, cols); break;
      }
    }
  }
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
  switch (w.format) {
    case WeightFormat::kF32:
      BlockRows(w.f32, w.rows, w.cols, x.x, x.n, block, y, ldy);
      return;
    case WeightFormat::kBf16:
      BlockRows(w.bf16, w.rows, w.cols, x.x, x.n, block, y, ldy);
      return;
    case WeightFormat::kQ8:
      GemvBlockQ8(w, x, block, y, ldy);
      return;
  }
}

uint16_t FloatToBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace lanlm::engine
