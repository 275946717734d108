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

// One weight row at a time, streamed once from memory (one sequential stream measured faster
// than four interleaved rows when memory is the limit), then kept in L1 for every activation.
template <typename T>
[[gnu::noipa]] void BlockRows(const T* w, int64_t rows, int64_t cols, const float* x, int64_t n, int64_t block,
                              float* y, int64_t ldy) {
  const int64_t o0 = block * kGemvRows, o1 = std::min(rows, o0 + kGemvRows);
  for (int64_t o = o0; o < o1; ++o) {
    const T* row = w + o * cols;
    if constexpr (!std::is_same_v<T, float>) {
      if (n > 1) {
        // Several activation rows: widen the weight row once (exactly, so the products keep
        // their bits) instead of once per activation row.
        thread_local std::vector<float> buf;
        float* wide = simd::Scratch(buf, cols);
        for (int64_t i = 0; i < cols; ++i) wide[i] = Bf16ToFloat(row[i]);
        for (int64_t r = 0; r < n; ++r) y[r * ldy + o] = DotRow(wide, x + r * cols, cols);
        continue;
      }
    }
    for (int64_t r = 0; r < n; ++r) y[r * ldy + o] = DotRow(row, x + r * cols, cols);
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
