// Internal to engine/ops: the fast q8 GEMV blocks each compiled where the build's -march has
// their instructions (the LANLM_Q8_* macros say which); gemv.h's Q8Kernels() lists them.
#pragma once

#include <algorithm>

#include "engine/ops/gemv.h"

#if defined(__AVX2__) && defined(__FMA__)
#define LANLM_Q8_AVX2 1
#endif
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define LANLM_Q8_AVX512 1
#endif

namespace lanlm::engine::q8_internal {

// The kGemvRows (4) weight rows of a block and their scales; slots past the last row repeat it,
// so a kernel always runs four rows and stores the `valid` ones.
struct BlockRows {
  const uint8_t* q[4];
  const float* scale[4];
  int64_t valid;
};
inline BlockRows RowsOf(const WeightMatrix& w, int64_t block) {
  static_assert(kGemvRows == 4);
  BlockRows rows{};
  const int64_t o0 = block * kGemvRows, groups = w.cols / kQ8Group;
  rows.valid = std::min<int64_t>(kGemvRows, w.rows - o0);
  for (int64_t j = 0; j < 4; ++j) {
    const int64_t o = o0 + std::min<int64_t>(j, rows.valid - 1);
    rows.q[j] = w.q8 + o * w.cols;
    rows.scale[j] = w.scale + o * groups;
  }
  return rows;
}

// Stores a block's four results, the valid ones: a whole block as one 16-byte store. The plain
// loop over `valid` compiled to a call of memcpy per block and activation row, 15 % of a
// 32-session q8 step (perf, config M).
inline void StoreRows(const float* out, int64_t valid, float* y) {
  if (valid == 4) {
    __builtin_memcpy(y, out, 4 * sizeof(float));  // constant size: one vector store, no call
  } else {
    for (int64_t j = 0; j < valid; ++j) y[j] = out[j];
  }
}

#if defined(LANLM_Q8_AVX2)
// 256-bit: one group per vector, even and odd groups in two accumulators per row.
void GemvBlockAvx2(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy);
const char* Avx2Name();  // "avx2-vnni" or "avx2"
#endif
#if defined(LANLM_Q8_AVX512)
// 512-bit: two consecutive groups per vector (gemv.h's 16 lanes), one accumulator per row.
void GemvBlockAvx512(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy);
// Blocks [begin, end): two whole blocks per pass over each activation row (8 rows), the rest
// one at a time; every row's bits are GemvBlockAvx512's.
void GemvBlocksAvx512(const WeightMatrix& w, const GemvInput& x, int64_t begin, int64_t end, float* y, int64_t ldy);
#endif

}  // namespace lanlm::engine::q8_internal
