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

// The activation rows as the matrix's kernel reads them (q8: quantized per group into work;
// bf16: rounded into pair words).
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
  } else if (w.format == WeightFormat::kBf16) {
    const int64_t words = n * ((w.cols + 1) / 2);
    if (static_cast<int64_t>(work.xp.size()) < words) work.xp.resize(words);
    PackBf16Activations(x, n, w.cols, work.xp.data());
    in.xp = work.xp.data();
  }
  return in;
}

int64_t BlockCost(const WeightMatrix& w, int64_t n) { return 2 * w.block_rows() * w.cols * n; }

// Batched (n > 1): threads take whole groups of kGroupBlocks blocks (4 panels, or 4 q8
// blocks: two passes of 8 rows), the kernels' widest tile.
// Batch 1: contiguous ranges of at least 16 narrowest tiles (1 panel, 2 q8 blocks) each, one per
// thread for a 288-row matrix and up to 4 per thread for the classifier, so bf16's prefetch runs
// ahead through a whole range. Groups claimed one at a time (a 288-row matrix is 5 groups: 3 for
// one thread, 2 for the other) left threads waiting, and bf16 prefetched groups that the other
// thread then read: contiguous ranges measured 1.1-1.4x the tokens at 2 threads in every format
// (BENCHMARKS.md, issue 11, eleventh session). The ranges are affine (ThreadPool::
// ParallelForAffine): a thread reads the same part of every matrix at every token, so that part
// stays in its core's caches (1.1-1.3x the tokens at 2 threads, thirteenth session), and a thread
// slowed by another process still hands its last ranges to the others. Which thread runs which
// never changes a bit.
constexpr int64_t kGroupBlocks = 4;
int64_t Groups(int64_t blocks) { return (blocks + kGroupBlocks - 1) / kGroupBlocks; }

// fn(begin, end) on ranges of blocks that together cover [0, blocks); unit = the blocks of
// the kernel's narrowest tile.
template <typename Fn>
void ForBlockRanges(ThreadPool& pool, int64_t blocks, int64_t n, int64_t unit, int64_t cost_per_block, Fn&& fn) {
  if (n > 1) {
    // Affine as at batch 1: a step of 8 sessions still waits on its weights more than on its
    // arithmetic (fp32 and bf16 1.05-1.2x the tokens at 2 threads); 32 sessions, compute-bound,
    // about the same.
    pool.ParallelForAffine(Groups(blocks), kGroupBlocks * cost_per_block, [&](int64_t g0, int64_t g1) {
      fn(g0 * kGroupBlocks, std::min(blocks, g1 * kGroupBlocks));
    });
    return;
  }
  const int64_t units = (blocks + unit - 1) / unit, threads = pool.size();
  const int64_t parts = std::min(units, threads * std::clamp<int64_t>(units / (threads * 16), 1, 4));
  auto edge = [&](int64_t p) { return std::min(blocks, units * p / parts * unit); };
  pool.ParallelForAffine(parts, cost_per_block * blocks / parts,
                         [&](int64_t p0, int64_t p1) { fn(edge(p0), edge(p1)); });
}

// The narrowest tile's blocks: q8 runs 8 rows (2 blocks) at a time, panels one at a time.
int64_t TileUnit(const WeightMatrix& w) { return w.format == WeightFormat::kQ8 ? 2 : 1; }

}  // namespace

void Linear(const WeightMatrix& w, const float* x, int64_t n, float* y, Work& work, ThreadPool& pool) {
  const GemvInput in = Prepare(w, x, n, work);
  ForBlockRanges(pool, w.blocks(), n, TileUnit(w), BlockCost(w, n), [&](int64_t begin, int64_t end) {
    GemvBlocks(w, in, begin, end, y, w.rows);
  });
}

void ProjectQkv(const ServingLayer& l, const float* xn, int64_t n, float* q, float* k, float* v, Work& work,
                ThreadPool& pool) {
  // wq, wk and wv share shape and format, so one quantized input serves all three.
  const GemvInput in = Prepare(l.wq, xn, n, work);
  // The three matrices in a row, matrix m's blocks at [m * stride, m * stride + nb); batched,
  // each starts a group (stride rounded up to whole groups), so no group spans two matrices.
  const int64_t nb = l.wq.blocks(), stride = n > 1 ? Groups(nb) * kGroupBlocks : nb;
  ForBlockRanges(pool, 3 * stride, n, TileUnit(l.wq), BlockCost(l.wq, n), [&](int64_t v0, int64_t v1) {
    const WeightMatrix* w[3] = {&l.wq, &l.wk, &l.wv};
    float* y[3] = {q, k, v};
    for (int m = 0; m < 3; ++m) {  // the part of [v0, v1) in matrix m
      const int64_t b0 = std::clamp(v0 - m * stride, int64_t{0}, nb);
      const int64_t b1 = std::clamp(v1 - m * stride, int64_t{0}, nb);
      if (b0 < b1) GemvBlocks(*w[m], in, b0, b1, y[m], w[m]->rows);
    }
  });
}

void AddLinear(const WeightMatrix& w, const float* in, int64_t n, float* x, float* tmp, Work& work,
               ThreadPool& pool) {
  const GemvInput gin = Prepare(w, in, n, work);
  ForBlockRanges(pool, w.blocks(), n, TileUnit(w), BlockCost(w, n), [&](int64_t begin, int64_t end) {
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
  ForBlockRanges(pool, l.w1.blocks(), n, TileUnit(l.w1), 2 * BlockCost(l.w1, n), [&](int64_t begin, int64_t end) {
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
