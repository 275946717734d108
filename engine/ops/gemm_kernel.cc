// The shared GEMM micro-kernel and packing routines; see gemm_kernel.h.
#include "engine/ops/gemm_kernel.h"

#include <algorithm>

namespace lanlm::engine::gemm {

using simd::kLanes;
using simd::LoadU;
using simd::Splat;
using simd::StoreU;
using simd::VecF;

namespace {

// Stores (or adds) the m_valid x n_valid corner of a kMr x kNr register tile to c.
inline void StoreTile(const VecF (&acc)[kMr][kNv], float* c, int64_t ldc, int m_valid, int n_valid, bool accumulate) {
  for (int m = 0; m < m_valid; ++m) {
    float* cm = c + m * ldc;
    if (n_valid == kNr) {
      for (int v = 0; v < kNv; ++v) {
        float* dst = cm + v * kLanes;
        StoreU(dst, accumulate ? LoadU(dst) + acc[m][v] : acc[m][v]);
      }
    } else {
      float tmp[kNr];
      for (int v = 0; v < kNv; ++v) StoreU(tmp + v * kLanes, acc[m][v]);
      for (int n = 0; n < n_valid; ++n) cm[n] = accumulate ? cm[n] + tmp[n] : tmp[n];
    }
  }
}

}  // namespace

[[gnu::noipa]] void MicroKernel(const float* ap, const float* bp, int64_t K, float* c, int64_t ldc, int m_valid,
                                int n_valid, bool accumulate) {
  VecF acc[kMr][kNv];
  for (int m = 0; m < kMr; ++m)
    for (int v = 0; v < kNv; ++v) acc[m][v] = VecF{};
  for (int64_t k = 0; k < K; ++k, ap += kMr, bp += kNr) {
    VecF bv[kNv];
    for (int v = 0; v < kNv; ++v) bv[v] = LoadU(bp + v * kLanes);
    for (int m = 0; m < kMr; ++m) {
      const VecF av = Splat(ap[m]);
      for (int v = 0; v < kNv; ++v) acc[m][v] = simd::Fma(acc[m][v], av, bv[v]);
    }
  }
  StoreTile(acc, c, ldc, m_valid, n_valid, accumulate);
}

[[gnu::noipa]] void MicroKernelRows(const float* a, int64_t lda, const float* bp, int64_t K, float* c, int64_t ldc,
                                    int m_valid, int n_valid, bool accumulate) {
  // Rows past m_valid repeat the last valid row (their sums are computed and dropped), so
  // nothing outside A is read.
  const float* rows[kMr];
  for (int m = 0; m < kMr; ++m) rows[m] = a + std::min(m, m_valid - 1) * lda;
  VecF acc[kMr][kNv];
  for (int m = 0; m < kMr; ++m)
    for (int v = 0; v < kNv; ++v) acc[m][v] = VecF{};
  for (int64_t k = 0; k < K; ++k, bp += kNr) {
    VecF bv[kNv];
    for (int v = 0; v < kNv; ++v) bv[v] = LoadU(bp + v * kLanes);
    for (int m = 0; m < kMr; ++m) {
      const VecF av = Splat(rows[m][k]);
      for (int v = 0; v < kNv; ++v) acc[m][v] = simd::Fma(acc[m][v], av, bv[v]);
    }
  }
  StoreTile(acc, c, ldc, m_valid, n_valid, accumulate);
}

void PackBPanel(Operand b, int64_t K, int64_t N, int64_t j, float* d) {
  const int64_t n0 = j * kNr;
  const int64_t cols = std::min<int64_t>(kNr, N - n0);
  if (b.s_col == 1) {  // rows of B contiguous: copy kNr floats per k
    for (int64_t k = 0; k < K; ++k) {
      const float* s = b.p + k * b.s_row + n0;
      for (int64_t n = 0; n < cols; ++n) d[k * kNr + n] = s[n];
      for (int64_t n = cols; n < kNr; ++n) d[k * kNr + n] = 0.0f;
    }
  } else {  // columns of B contiguous (B = wᵀ): transpose
    for (int64_t n = 0; n < cols; ++n) {
      const float* s = b.p + (n0 + n) * b.s_col;
      for (int64_t k = 0; k < K; ++k) d[k * kNr + n] = s[k * b.s_row];
    }
    for (int64_t n = cols; n < kNr; ++n)
      for (int64_t k = 0; k < K; ++k) d[k * kNr + n] = 0.0f;
  }
}

void PackA(Operand a, int64_t M, int64_t K, int64_t rb0, int64_t nb, float* dst) {
  if (a.s_row == 1) {
    // A = dyᵀ: the strips' rows of A are one contiguous run of each row of dy; walk dy row by
    // row (rows far apart, so prefetch ahead) and scatter each run into the strips.
    const int64_t m0 = rb0 * kMr;
    const int64_t rows = std::min<int64_t>(nb * kMr, M - m0);
    constexpr int64_t kAhead = 16;
    for (int64_t k = 0; k < K; ++k) {
      const float* s = a.p + k * a.s_col + m0;
      if (k + kAhead < K) {
        for (int64_t m = 0; m < rows; m += 16) __builtin_prefetch(s + kAhead * a.s_col + m);
      }
      for (int64_t b = 0; b < nb; ++b) {
        float* d = dst + b * K * kMr + k * kMr;
        const int64_t r0 = b * kMr;
        if (r0 + kMr <= rows) {
          __builtin_memcpy(d, s + r0, sizeof(float) * kMr);
        } else {
          for (int64_t m = 0; m < kMr; ++m) d[m] = r0 + m < rows ? s[r0 + m] : 0.0f;
        }
      }
    }
    return;
  }
  for (int64_t b = 0; b < nb; ++b) {  // rows of A contiguous: transpose each strip
    const int64_t m0 = (rb0 + b) * kMr;
    const int64_t rows = std::min<int64_t>(kMr, M - m0);
    float* d = dst + b * K * kMr;
    for (int64_t m = 0; m < rows; ++m) {
      const float* s = a.p + (m0 + m) * a.s_row;
      for (int64_t k = 0; k < K; ++k) d[k * kMr + m] = s[k * a.s_col];
    }
    for (int64_t m = rows; m < kMr; ++m)
      for (int64_t k = 0; k < K; ++k) d[k * kMr + m] = 0.0f;
  }
}

}  // namespace lanlm::engine::gemm
