// SwiGLU gate forward/backward, parallel over fixed blocks of elements. Each block is one call
// of a non-inlined function written with explicit vectors and partial tails, so every element
// runs the same code (including its exp) whatever the split or the array alignment.
#include "engine/ops/swiglu.h"

#include <algorithm>

#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

using simd::kLanes;
using simd::VecF;
constexpr int64_t kBlock = 2048;

inline VecF SigmoidV(VecF a) { return 1.0f / (1.0f + simd::Exp(-a)); }

// Loads w (<= kLanes) floats: a plain vector load when full, else a zero-padded partial one.
inline VecF Load(const float* p, int64_t w) { return w == kLanes ? simd::LoadU(p) : simd::LoadPartial(p, w); }
inline void Store(float* p, VecF v, int64_t w) {
  if (w == kLanes) {
    simd::StoreU(p, v);
  } else {
    simd::StorePartial(p, v, w);
  }
}

[[gnu::noipa]] void ForwardBlock(const float* a, const float* b, int64_t n, float* h) {
  for (int64_t i = 0; i < n; i += kLanes) {
    const int64_t w = std::min<int64_t>(kLanes, n - i);
    const VecF va = Load(a + i, w);
    Store(h + i, va * SigmoidV(va) * Load(b + i, w), w);
  }
}

// The gradients are complete vectors before the one add into da/db, so a second call adds
// exactly what the first did.
[[gnu::noipa]] void BackwardBlock(const float* dh, const float* a, const float* b, int64_t n, float* da,
                                     float* db) {
  for (int64_t i = 0; i < n; i += kLanes) {
    const int64_t w = std::min<int64_t>(kLanes, n - i);
    const VecF va = Load(a + i, w);
    const VecF g = Load(dh + i, w);
    const VecF s = SigmoidV(va);
    const VecF ga = g * Load(b + i, w) * (s * (1.0f + va * (1.0f - s)));
    const VecF gb = g * (va * s);
    Store(da + i, Load(da + i, w) + ga, w);
    Store(db + i, Load(db + i, w) + gb, w);
  }
}

}  // namespace

void SwiGluForward(const float* a, const float* b, int64_t n, float* h, ThreadPool& pool) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  pool.ParallelFor(blocks, 20 * kBlock, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t i0 = blk * kBlock;
      ForwardBlock(a + i0, b + i0, std::min(kBlock, n - i0), h + i0);
    }
  });
}

void SwiGluBackward(const float* dh, const float* a, const float* b, int64_t n, float* da, float* db,
                    ThreadPool& pool) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  pool.ParallelFor(blocks, 30 * kBlock, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t i0 = blk * kBlock;
      BackwardBlock(dh + i0, a + i0, b + i0, std::min(kBlock, n - i0), da + i0, db + i0);
    }
  });
}

}  // namespace lanlm::engine
