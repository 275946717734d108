// Causal attention, backward: per (batch, head), five small GEMMs on the matmul's micro-kernel
// over the probabilities the forward saved (attention.cc), parallel over (b, h).
#include "engine/ops/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/ops/gemm_kernel.h"
#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

using simd::kLanes;
using simd::LoadU;
using simd::StoreU;
using simd::VecF;

int64_t Panels(int64_t n) { return (n + gemm::kNr - 1) / gemm::kNr; }

// 1 / sqrt(D), as attention.cc's forward computes it.
[[gnu::noipa]] float ScoreScale(int64_t D) { return 1.0f / std::sqrt(static_cast<float>(D)); }

// Scratch floats BackwardHead needs: packed q, dout, k (as T x D right-hand operands),
// packed vᵀ (D x T), dS (T x T) and one A strip (T x kMr).
int64_t BackwardScratch(int64_t T, int64_t D) {
  return 3 * Panels(D) * T * gemm::kNr + Panels(T) * D * gemm::kNr + T * T + T * gemm::kMr;
}

// One (batch, head) of the backward as five small GEMMs on the shared micro-kernel (base
// pointers at (b, t = 0, h), rows at stride ld), skipping the tiles and reduction ranges that
// the causal mask makes zero:
//   dP = dout · vᵀ                   (lower-triangle tiles only)
//   dS = P ∘ (dP − rowsum(P ∘ dP)) · scale, zero above the diagonal
//   dq += dS · k,  dk += dSᵀ · q,  dv += Pᵀ · dout
// Each output element is one FMA chain over its reduction in index order, added to the
// gradient once (so two calls give exactly twice one).
[[gnu::noipa]] void BackwardHead(const float* dout, const float* q, const float* k, const float* v, const float* probs,
                                 int64_t T, int64_t ld, int64_t D, float scale, float* dq, float* dk, float* dv,
                                 float* scratch) {
  using gemm::kMr;
  using gemm::kNr;
  const int64_t pd = Panels(D), pt = Panels(T), panel = T * kNr;
  float* bq = scratch;             // q as B (T x D), pd panels of T x kNr
  float* bdo = bq + pd * panel;    // dout as B
  float* bk = bdo + pd * panel;    // k as B
  float* bvt = bk + pd * panel;    // vᵀ as B (D x T), pt panels of D x kNr
  float* ds = bvt + pt * D * kNr;  // dP, then dS (T x T)
  float* ap = ds + T * T;          // one packed A strip (up to T x kMr)
  for (int64_t j = 0; j < pd; ++j) {
    gemm::PackBPanel({q, ld, 1}, T, D, j, bq + j * panel);
    gemm::PackBPanel({dout, ld, 1}, T, D, j, bdo + j * panel);
    gemm::PackBPanel({k, ld, 1}, T, D, j, bk + j * panel);
  }
  for (int64_t j = 0; j < pt; ++j) gemm::PackBPanel({v, 1, ld}, D, T, j, bvt + j * D * kNr);

  const int64_t blocks = (T + kMr - 1) / kMr;
  for (int64_t rb = 0; rb < blocks; ++rb) {  // dP, tiles that touch j <= i
    const int64_t m0 = rb * kMr;
    const int m_valid = static_cast<int>(std::min<int64_t>(kMr, T - m0));
    const int64_t last_panel = (m0 + m_valid - 1) / kNr;
    for (int64_t j = 0; j <= last_panel; ++j) {
      const int n_valid = static_cast<int>(std::min<int64_t>(kNr, T - j * kNr));
      gemm::MicroKernelRows(dout + m0 * ld, ld, bvt + j * D * kNr, D, ds + m0 * T + j * kNr, T, m_valid, n_valid,
                            false);
    }
  }
  for (int64_t i = 0; i < T; ++i) {  // dS in place
    const int64_t n = i + 1;
    const float* p = probs + i * T;
    float* row = ds + i * T;
    const float pdp = simd::Dot(p, row, n);
    for (int64_t j = 0; j < n; j += kLanes) {  // one expression for full and partial vectors
      const bool full = j + kLanes <= n;
      const VecF pj = full ? LoadU(p + j) : simd::LoadPartial(p + j, n - j);
      const VecF dpj = full ? LoadU(row + j) : simd::LoadPartial(row + j, n - j);
      const VecF dsj = pj * (dpj - pdp) * scale;
      if (full) {
        StoreU(row + j, dsj);
      } else {
        simd::StorePartial(row + j, dsj, n - j);
      }
    }
    std::memset(row + n, 0, sizeof(float) * (T - n));
  }
  for (int64_t rb = 0; rb < blocks; ++rb) {
    const int64_t m0 = rb * kMr;
    const int m_valid = static_cast<int>(std::min<int64_t>(kMr, T - m0));
    // dq rows [m0, m0 + m_valid): keys j < m0 + m_valid.
    const int64_t kend = m0 + m_valid;
    for (int64_t j = 0; j < pd; ++j) {
      const int n_valid = static_cast<int>(std::min<int64_t>(kNr, D - j * kNr));
      gemm::MicroKernelRows(ds + m0 * T, T, bk + j * panel, kend, dq + m0 * ld + j * kNr, ld, m_valid, n_valid, true);
    }
    // dk and dv rows (keys) [m0, m0 + m_valid): queries i >= m0.
    const int64_t kcount = T - m0;
    gemm::PackA({ds + m0 * T, 1, T}, T, kcount, rb, 1, ap);
    for (int64_t j = 0; j < pd; ++j) {
      const int n_valid = static_cast<int>(std::min<int64_t>(kNr, D - j * kNr));
      gemm::MicroKernel(ap, bq + j * panel + m0 * kNr, kcount, dk + m0 * ld + j * kNr, ld, m_valid, n_valid, true);
    }
    gemm::PackA({probs + m0 * T, 1, T}, T, kcount, rb, 1, ap);
    for (int64_t j = 0; j < pd; ++j) {
      const int n_valid = static_cast<int>(std::min<int64_t>(kNr, D - j * kNr));
      gemm::MicroKernel(ap, bdo + j * panel + m0 * kNr, kcount, dv + m0 * ld + j * kNr, ld, m_valid, n_valid, true);
    }
  }
}

}  // namespace

void AttentionBackward(const float* dout, const float* q, const float* k, const float* v, const float* probs, int64_t B,
                       int64_t T, int64_t NH, int64_t D, float* dq, float* dk, float* dv, ThreadPool& pool) {
  const float scale = ScoreScale(D);
  const int64_t ld = NH * D;
  pool.ParallelFor(B * NH, 4 * T * T * D, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> buf;
    float* scratch = simd::Scratch(buf, BackwardScratch(T, D));
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t base = (bh / NH) * T * ld + (bh % NH) * D;
      BackwardHead(dout + base, q + base, k + base, v + base, probs + bh * T * T, T, ld, D, scale, dq + base, dk + base,
                   dv + base, scratch);
    }
  });
}

}  // namespace lanlm::engine
