// Causal attention: training forward (parallel over (b, h, query row), probabilities saved),
// backward (parallel over (b, h); dk/dv summed in a per-thread scratch, then added once), and
// decoding over a KV cache. The forward row and the decode step share AttendRow, so a decoded
// position equals the corresponding row of the training forward bit for bit.
#include "engine/ops/attention.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

// One query q (D) against n keys/values whose rows start at k, v with stride ld floats:
// p (n) = softmax(scale * q·k_j), out (D) = sum_j p_j v_j.
// 1 / sqrt(D), computed by one function so the forward and decoding agree to the bit.
[[gnu::noipa]] float ScoreScale(int64_t D) { return 1.0f / std::sqrt(static_cast<float>(D)); }

[[gnu::noipa]] void AttendRow(const float* q, const float* k, const float* v, int64_t ld, int64_t n, int64_t D,
                                 float scale, float* p, float* out) {
  for (int64_t j = 0; j < n; ++j) p[j] = simd::Dot(q, k + j * ld, D) * scale;
  const float m = simd::Max(p, n);
  const float sum = simd::ExpShiftScale(p, m, 1.0f, n, p);
  simd::Scale(1.0f / sum, n, p);
  for (int64_t d = 0; d < D; ++d) out[d] = 0.0f;
  for (int64_t j = 0; j < n; ++j) simd::Axpy(p[j], v + j * ld, D, out);
}

// One (batch, head) of the backward; base points at (b, t = 0, h). dk_l, dv_l (T, D), dp (T),
// dq_row (D) are scratch.
[[gnu::noipa]] void BackwardHead(const float* dout, const float* q, const float* k, const float* v,
                                    const float* probs, int64_t T, int64_t ld, int64_t D, float scale, float* dq,
                                    float* dk, float* dv, float* dk_l, float* dv_l, float* dp, float* dq_row) {
  std::memset(dk_l, 0, sizeof(float) * T * D);
  std::memset(dv_l, 0, sizeof(float) * T * D);
  for (int64_t i = 0; i < T; ++i) {
    const float* p = probs + i * T;
    const float* g = dout + i * ld;
    for (int64_t j = 0; j <= i; ++j) {
      dp[j] = simd::Dot(g, v + j * ld, D);
      simd::Axpy(p[j], g, D, dv_l + j * D);
    }
    const float pdp = simd::Dot(p, dp, i + 1);
    for (int64_t d = 0; d < D; ++d) dq_row[d] = 0.0f;
    const float* qi = q + i * ld;
    for (int64_t j = 0; j <= i; ++j) {
      const float ds = p[j] * (dp[j] - pdp) * scale;
      simd::Axpy(ds, k + j * ld, D, dq_row);
      simd::Axpy(ds, qi, D, dk_l + j * D);
    }
    simd::AddTo(dq + i * ld, dq_row, D);
  }
  for (int64_t j = 0; j < T; ++j) {
    simd::AddTo(dk + j * ld, dk_l + j * D, D);
    simd::AddTo(dv + j * ld, dv_l + j * D, D);
  }
}

}  // namespace

void AttentionForward(const float* q, const float* k, const float* v, int64_t B, int64_t T, int64_t NH,
                      int64_t D, float* probs, float* out, ThreadPool& pool) {
  const float scale = ScoreScale(D);
  const int64_t ld = NH * D;
  pool.ParallelFor(B * NH * T, 2 * T * D, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t i = item % T;
      const int64_t h = (item / T) % NH;
      const int64_t b = item / (T * NH);
      const int64_t base = b * T * ld + h * D;  // (b, t = 0, h)
      float* p = probs + ((b * NH + h) * T + i) * T;
      AttendRow(q + base + i * ld, k + base, v + base, ld, i + 1, D, scale, p, out + base + i * ld);
      for (int64_t j = i + 1; j < T; ++j) p[j] = 0.0f;
    }
  });
}

void AttentionBackward(const float* dout, const float* q, const float* k, const float* v, const float* probs,
                       int64_t B, int64_t T, int64_t NH, int64_t D, float* dq, float* dk, float* dv,
                       ThreadPool& pool) {
  const float scale = ScoreScale(D);
  const int64_t ld = NH * D;
  pool.ParallelFor(B * NH, 4 * T * T * D, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> buf;
    float* dk_l = simd::Scratch(buf, 2 * T * D + T + D);
    float* dv_l = dk_l + T * D;
    float* dp = dv_l + T * D;
    float* dq_row = dp + T;
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t base = (bh / NH) * T * ld + (bh % NH) * D;  // (b, t = 0, h)
      BackwardHead(dout + base, q + base, k + base, v + base, probs + bh * T * T, T, ld, D, scale, dq + base,
                   dk + base, dv + base, dk_l, dv_l, dp, dq_row);
    }
  });
}

void AttentionDecode(const float* q, const float* k_cache, const float* v_cache, int64_t len, int64_t NH,
                     int64_t D, float* out, float* scratch, ThreadPool& pool) {
  const float scale = ScoreScale(D);
  const int64_t ld = NH * D;
  pool.ParallelFor(NH, 4 * len * D, [&](int64_t begin, int64_t end) {
    for (int64_t h = begin; h < end; ++h) {
      AttendRow(q + h * D, k_cache + h * D, v_cache + h * D, ld, len, D, scale, scratch + h * len, out + h * D);
    }
  });
}

}  // namespace lanlm::engine
