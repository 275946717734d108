// Decoder projections on GEMV blocks; see decoder_steps.h.
#include "engine/generate/decoder_steps.h"

#include <algorithm>

#include "engine/ops/simd.h"
#include "engine/ops/swiglu.h"

namespace lanlm::engine::decode {

ThreadPool& InlinePool() {
  static ThreadPool pool(1);
  return pool;
}

namespace {

// The activation rows as the matrix's kernel reads them (q8: quantized per group into work).
GemvInput Prepare(const WeightMatrix& w, const float* x, int64_t n, Work& work) {
  GemvInput in;
  in.x = x;
  in.n = n;
  if (w.format == WeightFormat::kQ8) {
    if (static_cast<int64_t>(work.xq.size()) < n * w.cols) work.xq.resize(n * w.cols);
    if (static_cast<int64_t>(work.xs.size()) < n * w.cols / kQ8Group) work.xs.resize(n * w.cols / kQ8Group);
    QuantizeQ8(x, n * w.cols, work.xq.data(), work.xs.data());
    in.xq = work.xq.data();
    in.xs = work.xs.data();
  }
  return in;
}

int64_t BlockCost(const WeightMatrix& w, int64_t n) { return 2 * w.block_rows() * w.cols * n; }

// Threads get whole groups of kGroupBlocks blocks (4 panels, or 4 q8 blocks: two passes of 8
// rows), the kernels' widest tile. At batch 1 a tile takes the latency of its fma chains
// whatever its width, and the pool's chunks of single blocks (3 panels per chunk for a 288-row
// matrix at 2 threads) ran as a 2- and a 1-panel tile: twice the time of one 4-panel tile.
// fn(begin, end) gets a range of blocks; which thread runs which never changes a bit.
constexpr int64_t kGroupBlocks = 4;
int64_t Groups(int64_t blocks) { return (blocks + kGroupBlocks - 1) / kGroupBlocks; }

template <typename Fn>
void ForBlockGroups(ThreadPool& pool, int64_t blocks, int64_t cost_per_block, Fn&& fn) {
  pool.ParallelFor(Groups(blocks), kGroupBlocks * cost_per_block, [&](int64_t g0, int64_t g1) {
    fn(g0 * kGroupBlocks, std::min(blocks, g1 * kGroupBlocks));
  });
}

}  // namespace

void Linear(const WeightMatrix& w, const float* x, int64_t n, float* y, Work& work, ThreadPool& pool) {
  const GemvInput in = Prepare(w, x, n, work);
  ForBlockGroups(pool, w.blocks(), BlockCost(w, n), [&](int64_t begin, int64_t end) {
    GemvBlocks(w, in, begin, end, y, w.rows);
  });
}

void ProjectQkv(const ServingLayer& l, const float* xn, int64_t n, float* q, float* k, float* v, Work& work,
                ThreadPool& pool) {
  // wq, wk and wv share shape and format, so one quantized input serves all three.
  const GemvInput in = Prepare(l.wq, xn, n, work);
  // Groups of the three matrices in a row: matrix m's groups are [m * ng, (m + 1) * ng).
  const int64_t nb = l.wq.blocks(), ng = Groups(nb);
  pool.ParallelFor(3 * ng, kGroupBlocks * BlockCost(l.wq, n), [&](int64_t g0, int64_t g1) {
    const WeightMatrix* w[3] = {&l.wq, &l.wk, &l.wv};
    float* y[3] = {q, k, v};
    for (int m = 0; m < 3; ++m) {  // the part of [g0, g1) in matrix m's groups, as blocks
      const int64_t b0 = (std::max(g0, m * ng) - m * ng) * kGroupBlocks;
      const int64_t b1 = std::min(nb, (std::min(g1, (m + 1) * ng) - m * ng) * kGroupBlocks);
      if (b0 < b1) GemvBlocks(*w[m], in, b0, b1, y[m], w[m]->rows);
    }
  });
}

void AddLinear(const WeightMatrix& w, const float* in, int64_t n, float* x, float* tmp, Work& work,
               ThreadPool& pool) {
  const GemvInput gin = Prepare(w, in, n, work);
  ForBlockGroups(pool, w.blocks(), BlockCost(w, n), [&](int64_t begin, int64_t end) {
    GemvBlocks(w, gin, begin, end, tmp, w.rows);
    const int64_t o0 = begin * w.block_rows(), o1 = std::min(w.rows, end * w.block_rows());
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t o = o0; o < o1; ++o) x[r * w.rows + o] += tmp[r * w.rows + o];
    }
  });
}

void GatedFfn(const ServingLayer& l, const float* xn, int64_t n, float* a, float* b, float* g, Work& work,
              ThreadPool& pool) {
  const int64_t F = l.w1.rows;
  const GemvInput in = Prepare(l.w1, xn, n, work);
  // The gate runs once per range of blocks (contiguous columns), not per block of four
  // columns: elementwise, so the same bits, without a call per four values.
  ForBlockGroups(pool, l.w1.blocks(), 2 * BlockCost(l.w1, n), [&](int64_t begin, int64_t end) {
    GemvBlocks(l.w1, in, begin, end, a, F);
    GemvBlocks(l.w3, in, begin, end, b, F);
    const int64_t o0 = begin * l.w1.block_rows(), m = std::min(F, end * l.w1.block_rows()) - o0;
    for (int64_t r = 0; r < n; ++r) {
      const int64_t at = r * F + o0;
      SwiGluForward(a + at, b + at, m, g + at, InlinePool());
    }
  });
}

}  // namespace lanlm::engine::decode
