// RMSNorm forward/backward. Rows are independent (parallel over rows, one non-inlined row
// function with explicit-vector reductions); dweight is summed over rows in row order per
// fixed block of columns, so no element depends on the pool size or on array alignment.
#include "engine/ops/rms_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

constexpr int64_t kColBlock = 64;  // dweight work unit: fixed column blocks, independent of threads

[[gnu::noipa]] void ForwardRow(const float* x, const float* weight, int64_t dim, float eps, float* y,
                                  float* rstd) {
  const float s = 1.0f / std::sqrt(simd::Dot(x, x, dim) / static_cast<float>(dim) + eps);
  *rstd = s;
  for (int64_t i = 0; i < dim; ++i) y[i] = x[i] * s * weight[i];
}

// With s = rstd and g = dy ⊙ weight:  dx = s g - s³ x (g·x) / dim. g is scratch (dim).
[[gnu::noipa]] void BackwardRow(const float* dy, const float* x, const float* weight, float s, int64_t dim,
                                   float* g, float* dx) {
  for (int64_t i = 0; i < dim; ++i) g[i] = dy[i] * weight[i];
  const float c = s * s * s * simd::Dot(g, x, dim) / static_cast<float>(dim);
  for (int64_t i = 0; i < dim; ++i) g[i] = s * g[i] - c * x[i];
  simd::AddTo(dx, g, dim);
}

// dweight[c0 + i] += sum_r dy[r, c0 + i] x[r, c0 + i] rstd[r], rows in order.
[[gnu::noipa]] void WeightBlock(const float* dy, const float* x, const float* rstd, int64_t rows, int64_t dim,
                                   int64_t c0, int64_t n, float* dweight) {
  float sum[kColBlock] = {};
  for (int64_t r = 0; r < rows; ++r) {
    const float* dyr = dy + r * dim + c0;
    const float* xr = x + r * dim + c0;
    const float s = rstd[r];
    for (int64_t i = 0; i < n; ++i) sum[i] += dyr[i] * xr[i] * s;
  }
  simd::AddTo(dweight + c0, sum, n);
}

}  // namespace

void RmsNormForward(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y,
                    float* rstd, ThreadPool& pool) {
  pool.ParallelFor(rows, 4 * dim, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) ForwardRow(x + r * dim, weight, dim, eps, y + r * dim, rstd + r);
  });
}

void RmsNormBackward(const float* dy, const float* x, const float* weight, const float* rstd, int64_t rows,
                     int64_t dim, float* dx, float* dweight, ThreadPool& pool) {
  pool.ParallelFor(rows, 6 * dim, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> buf;
    float* g = simd::Scratch(buf, dim);
    for (int64_t r = begin; r < end; ++r) {
      BackwardRow(dy + r * dim, x + r * dim, weight, rstd[r], dim, g, dx + r * dim);
    }
  });
  const int64_t blocks = (dim + kColBlock - 1) / kColBlock;
  pool.ParallelFor(blocks, 2 * rows * kColBlock, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t c0 = blk * kColBlock;
      WeightBlock(dy, x, rstd, rows, dim, c0, std::min(kColBlock, dim - c0), dweight);
    }
  });
}

}  // namespace lanlm::engine
