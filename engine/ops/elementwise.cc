// Elementwise kernels, parallel over fixed blocks of elements (so the vector/scalar split of
// each element depends only on n, never on the pool size).
#include "engine/ops/elementwise.h"

#include <algorithm>

namespace lanlm::engine {
namespace {
constexpr int64_t kBlock = 4096;

[[gnu::noipa]] void AddBlock(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace

void AddInPlace(float* y, const float* x, int64_t n, ThreadPool& pool) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  pool.ParallelFor(blocks, kBlock, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t i0 = blk * kBlock;
      AddBlock(y + i0, x + i0, std::min(kBlock, n - i0));
    }
  });
}

}  // namespace lanlm::engine
