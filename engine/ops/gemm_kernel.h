// Internal to engine/ops: the packed, register-blocked GEMM building blocks shared by the
// parallel matmul (matmul.cc) and the per-head attention (attention.cc, attention_backward.cc). A kMr x kNr
// tile of C is summed over the reduction in registers, one FMA chain per element in k order,
// so an element's bits depend only on its operands and the reduction range, never on how
// work is split. Not a general BLAS.
#pragma once

#include <cstdint>

#include "engine/ops/simd.h"

namespace lanlm::engine::gemm {

inline constexpr int kNv = 2;                   // vectors per tile row
inline constexpr int kNr = kNv * simd::kLanes;  // tile columns
// Tile rows: kMr * kNv accumulators + kNv B vectors + 1 broadcast fit the register file
// (32 zmm with AVX-512, 16 ymm with AVX2, 16 xmm with SSE).
inline constexpr int kMr = simd::kLanes >= 16 ? 12 : (simd::kLanes == 8 ? 6 : 4);

// A (M x K) as A(m, k) = p[m * s_row + k * s_col]; B (K x N) as B(k, n) = p[k * s_row + n * s_col].
struct Operand {
  const float* p;
  int64_t s_row;  // stride of A's m / B's k
  int64_t s_col;  // stride of A's k / B's n
};

// c (m_valid x n_valid of a kMr x kNr tile, stride ldc) (=|+=) sum_k ap[k, :]ᵀ bp[k, :],
// ap (K x kMr) and bp (K x kNr) packed.
void MicroKernel(const float* ap, const float* bp, int64_t K, float* c, int64_t ldc, int m_valid, int n_valid,
                 bool accumulate);

// The same tile with A read in place from row-major rows (A(m, k) = a[m * lda + k]) instead
// of a packed strip: the same arithmetic, without the cost of packing A.
void MicroKernelRows(const float* a, int64_t lda, const float* bp, int64_t K, float* c, int64_t ldc, int m_valid,
                     int n_valid, bool accumulate);

// Packs panel j (columns [j * kNr, j * kNr + kNr)) of B (K x N) into dst (K x kNr), zero past N.
void PackBPanel(Operand b, int64_t K, int64_t N, int64_t j, float* dst);

// Packs blocks [rb0, rb0 + nb) of kMr rows of A (M x K) into dst (nb strips of K x kMr), zero
// rows past M.
void PackA(Operand a, int64_t M, int64_t K, int64_t rb0, int64_t nb, float* dst);

}  // namespace lanlm::engine::gemm
