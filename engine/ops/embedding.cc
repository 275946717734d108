// Embedding lookup (parallel over tokens) and its scatter-add gradient (parallel over fixed
// column blocks). The backward groups equal tokens first, sums each group's rows in token
// order, and adds each sum once, so a call adds exactly the same value whatever dtable holds.
#include "engine/ops/embedding.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {
constexpr int64_t kColBlock = 64;

// Columns [c0, c0 + w) of every token's row: the rows dout[ord[g..e)] of equal tokens (ord
// sorted by token, then position) are summed in order and the sum added once.
[[gnu::noipa]] void BackwardBlock(const float* dout, const int32_t* tokens, const int64_t* ord, int64_t n,
                                     int64_t dim, int64_t c0, int64_t w, float* dtable) {
  for (int64_t g = 0; g < n;) {
    const int32_t tok = tokens[ord[g]];
    float sum[kColBlock];
    const float* first = dout + ord[g] * dim + c0;
    for (int64_t i = 0; i < w; ++i) sum[i] = first[i];
    int64_t e = g + 1;
    for (; e < n && tokens[ord[e]] == tok; ++e) {
      const float* row = dout + ord[e] * dim + c0;
      for (int64_t i = 0; i < w; ++i) sum[i] += row[i];
    }
    simd::AddTo(dtable + static_cast<int64_t>(tok) * dim + c0, sum, w);
    g = e;
  }
}

}  // namespace

void EmbeddingForward(const int32_t* tokens, const float* table, int64_t n, int64_t dim, float* out,
                      ThreadPool& pool) {
  pool.ParallelFor(n, dim, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      std::memcpy(out + t * dim, table + static_cast<int64_t>(tokens[t]) * dim, sizeof(float) * dim);
    }
  });
}

void EmbeddingBackward(const float* dout, const int32_t* tokens, int64_t n, int64_t dim, float* dtable,
                       ThreadPool& pool) {
  if (n <= 0) return;
  // Positions sorted by (token, position): each token's occurrences, in position order.
  thread_local std::vector<int64_t> order;
  order.resize(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) order[t] = t;
  std::stable_sort(order.begin(), order.end(), [&](int64_t l, int64_t r) { return tokens[l] < tokens[r]; });
  const int64_t* ord = order.data();
  const int64_t blocks = (dim + kColBlock - 1) / kColBlock;
  pool.ParallelFor(blocks, n * kColBlock, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t c0 = blk * kColBlock;
      BackwardBlock(dout, tokens, ord, n, dim, c0, std::min(kColBlock, dim - c0), dtable);
    }
  });
}

}  // namespace lanlm::engine
