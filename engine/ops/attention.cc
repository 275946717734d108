// Causal attention: training forward (parallel over (b, h), probabilities saved), backward
// (parallel over (b, h); dk/dv summed in per-thread scratch, then added once), and decoding
// over a KV cache. Each (b, h) first packs its keys transposed (D x T) and its values padded
// (T x Dp), so scores are vectorised across keys (no horizontal sums) and p·v across the head
// dimension. The forward row and the decode step share AttendRow over the same packing, so a
// decoded position equals the corresponding row of the training forward bit for bit.
#include "engine/ops/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

using simd::kLanes;
using simd::LoadU;
using simd::Splat;
using simd::StoreU;
using simd::VecF;

int64_t RoundUp(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// 1 / sqrt(D), computed by one function so the forward and decoding agree to the bit.
[[gnu::noipa]] float ScoreScale(int64_t D) { return 1.0f / std::sqrt(static_cast<float>(D)); }

// Packs n rows of D floats at stride ld: kt (D x ldt) = transposed, zero-padded to ldt
// columns; vp (n x Dp) = rows zero-padded to Dp. Either may be null.
void PackHead(const float* k, const float* v, int64_t ld, int64_t n, int64_t D, int64_t ldt, float* kt,
              float* vp) {
  const int64_t Dp = RoundUp(D);
  if (kt != nullptr) {
    for (int64_t d = 0; d < D; ++d) {
      float* row = kt + d * ldt;
      for (int64_t j = 0; j < n; ++j) row[j] = k[j * ld + d];
      for (int64_t j = n; j < ldt; ++j) row[j] = 0.0f;
    }
  }
  if (vp != nullptr) {
    for (int64_t j = 0; j < n; ++j) {
      std::memcpy(vp + j * Dp, v + j * ld, sizeof(float) * D);
      for (int64_t d = D; d < Dp; ++d) vp[j * Dp + d] = 0.0f;
    }
  }
}

// s[j0 + c] for NB blocks of kLanes keys: one FMA chain over d per key.
template <int NB>
void ScoreBlocks(const float* a, const float* bt, int64_t ldt, int64_t D, float* s) {
  VecF c[NB];
  for (int b = 0; b < NB; ++b) c[b] = VecF{};
  for (int64_t d = 0; d < D; ++d, bt += ldt) {
    const VecF ad = Splat(a[d]);
    for (int b = 0; b < NB; ++b) c[b] += ad * LoadU(bt + b * kLanes);
  }
  for (int b = 0; b < NB; ++b) StoreU(s + b * kLanes, c[b]);
}

// s[j] = sum_d a[d] * bt[d * ldt + j] for j < RoundUp(n): one FMA chain over d in order per
// key, vectorised across keys (up to four blocks at a time for latency), the same bits for
// every key wherever it falls.
void ScoresAcross(const float* a, const float* bt, int64_t ldt, int64_t n, int64_t D, float* s) {
  int64_t j = 0;
  for (; j + 4 * kLanes <= n; j += 4 * kLanes) ScoreBlocks<4>(a, bt + j, ldt, D, s + j);
  switch ((n - j + kLanes - 1) / kLanes) {  // 0 to 4 blocks left
    case 4: ScoreBlocks<4>(a, bt + j, ldt, D, s + j); break;
    case 3: ScoreBlocks<3>(a, bt + j, ldt, D, s + j); break;
    case 2: ScoreBlocks<2>(a, bt + j, ldt, D, s + j); break;
    case 1: ScoreBlocks<1>(a, bt + j, ldt, D, s + j); break;
    default: break;
  }
}

// out[c] = sum_j w[j] * rows[j * Dp + c] for c < NV * kLanes: even and odd j in two FMA
// chains (for latency), added at the end; the order depends only on n.
template <int NV>
void WeightedRowsChunk(const float* w, const float* rows, int64_t Dp, int64_t n, float* out) {
  VecF even[NV], odd[NV];
  for (int v = 0; v < NV; ++v) even[v] = odd[v] = VecF{};
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) {
    const VecF w0 = Splat(w[j]);
    const VecF w1 = Splat(w[j + 1]);
    const float* r0 = rows + j * Dp;
    const float* r1 = r0 + Dp;
    for (int v = 0; v < NV; ++v) {
      even[v] += w0 * LoadU(r0 + v * kLanes);
      odd[v] += w1 * LoadU(r1 + v * kLanes);
    }
  }
  if (j < n) {
    const VecF w0 = Splat(w[j]);
    for (int v = 0; v < NV; ++v) even[v] += w0 * LoadU(rows + j * Dp + v * kLanes);
  }
  for (int v = 0; v < NV; ++v) StoreU(out + v * kLanes, even[v] + odd[v]);
}

// out (Dp) = sum_j w[j] * rows[j] (each element's order depends only on n).
void WeightedRows(const float* w, const float* rows, int64_t Dp, int64_t n, float* out) {
  int64_t c = 0;
  for (; c + 4 * kLanes <= Dp; c += 4 * kLanes) WeightedRowsChunk<4>(w, rows + c, Dp, n, out + c);
  switch ((Dp - c) / kLanes) {
    case 3: WeightedRowsChunk<3>(w, rows + c, Dp, n, out + c); break;
    case 2: WeightedRowsChunk<2>(w, rows + c, Dp, n, out + c); break;
    case 1: WeightedRowsChunk<1>(w, rows + c, Dp, n, out + c); break;
    default: break;
  }
}

// dk_l[j] += ds[j] * qi and dv_l[j] += p[j] * g for j < n (rows of Dp), qi and g held in
// registers NV vectors at a time.
template <int NV>
void OuterUpdatesChunk(const float* ds, const float* qi, const float* p, const float* g, int64_t n, int64_t Dp,
                       float* dk_l, float* dv_l) {
  VecF vq[NV], vg[NV];
  for (int v = 0; v < NV; ++v) {
    vq[v] = LoadU(qi + v * kLanes);
    vg[v] = LoadU(g + v * kLanes);
  }
  for (int64_t j = 0; j < n; ++j) {
    const VecF a = Splat(ds[j]);
    const VecF b = Splat(p[j]);
    float* rk = dk_l + j * Dp;
    float* rv = dv_l + j * Dp;
    for (int v = 0; v < NV; ++v) {
      StoreU(rk + v * kLanes, LoadU(rk + v * kLanes) + a * vq[v]);
      StoreU(rv + v * kLanes, LoadU(rv + v * kLanes) + b * vg[v]);
    }
  }
}

void OuterUpdates(const float* ds, const float* qi, const float* p, const float* g, int64_t n, int64_t Dp,
                  float* dk_l, float* dv_l) {
  int64_t c = 0;
  for (; c + 4 * kLanes <= Dp; c += 4 * kLanes) OuterUpdatesChunk<4>(ds, qi + c, p, g + c, n, Dp, dk_l + c, dv_l + c);
  switch ((Dp - c) / kLanes) {
    case 3: OuterUpdatesChunk<3>(ds, qi + c, p, g + c, n, Dp, dk_l + c, dv_l + c); break;
    case 2: OuterUpdatesChunk<2>(ds, qi + c, p, g + c, n, Dp, dk_l + c, dv_l + c); break;
    case 1: OuterUpdatesChunk<1>(ds, qi + c, p, g + c, n, Dp, dk_l + c, dv_l + c); break;
    default: break;
  }
}

// One query q (D) against n packed keys kt (D x ldt) and values vp (n x Dp):
// p (n) = softmax(scale * q·k_j), out (D) = sum_j p_j v_j. s (RoundUp(n)) and o (Dp) are scratch.
[[gnu::noipa]] void AttendRow(const float* q, const float* kt, int64_t ldt, const float* vp, int64_t n, int64_t D,
                              float scale, float* s, float* o, float* p, float* out) {
  ScoresAcross(q, kt, ldt, n, D, s);
  simd::Scale(scale, n, s);
  const float m = simd::Max(s, n);
  const float sum = simd::ExpShiftScale(s, m, 1.0f, n, p);
  simd::Scale(1.0f / sum, n, p);
  WeightedRows(p, vp, RoundUp(D), n, o);
  std::memcpy(out, o, sizeof(float) * D);
}

// One (batch, head) of the forward; base pointers at (b, t = 0, h), rows at stride ld.
[[gnu::noipa]] void ForwardHead(const float* q, const float* k, const float* v, int64_t T, int64_t ld, int64_t D,
                                float scale, float* probs, float* out, float* scratch) {
  const int64_t Tp = RoundUp(T), Dp = RoundUp(D);
  float* kt = scratch;
  float* vp = kt + D * Tp;
  float* s = vp + T * Dp;
  float* o = s + Tp;
  PackHead(k, v, ld, T, D, Tp, kt, vp);
  for (int64_t i = 0; i < T; ++i) {
    float* p = probs + i * T;
    AttendRow(q + i * ld, kt, Tp, vp, i + 1, D, scale, s, o, p, out + i * ld);
    for (int64_t j = i + 1; j < T; ++j) p[j] = 0.0f;
  }
}

// One (batch, head) of the backward; base pointers at (b, t = 0, h).
[[gnu::noipa]] void BackwardHead(const float* dout, const float* q, const float* k, const float* v,
                                 const float* probs, int64_t T, int64_t ld, int64_t D, float scale, float* dq,
                                 float* dk, float* dv, float* scratch) {
  const int64_t Tp = RoundUp(T), Dp = RoundUp(D);
  float* vt = scratch;          // (D, Tp) values transposed
  float* kp = vt + D * Tp;      // (T, Dp) keys padded
  float* dk_l = kp + T * Dp;    // (T, Dp)
  float* dv_l = dk_l + T * Dp;  // (T, Dp)
  float* dp = dv_l + T * Dp;    // (Tp)
  float* ds = dp + Tp;          // (Tp)
  float* row = ds + Tp;         // (Dp)
  float* gq = row + Dp;         // (2 Dp): the query and dout rows, padded
  PackHead(v, nullptr, ld, T, D, Tp, vt, nullptr);
  PackHead(nullptr, k, ld, T, D, Tp, nullptr, kp);
  std::memset(dk_l, 0, sizeof(float) * 2 * T * Dp);
  float* g = gq;
  float* qi = gq + Dp;
  for (int64_t d = D; d < Dp; ++d) g[d] = qi[d] = 0.0f;
  for (int64_t i = 0; i < T; ++i) {
    const int64_t n = i + 1;
    const float* p = probs + i * T;
    std::memcpy(g, dout + i * ld, sizeof(float) * D);
    std::memcpy(qi, q + i * ld, sizeof(float) * D);
    ScoresAcross(g, vt, Tp, n, D, dp);  // dp_j = dout_i · v_j
    const float pdp = simd::Dot(p, dp, n);
    for (int64_t j = 0; j < n; j += kLanes) {  // ds_j = p_j (dp_j - p·dp) scale; ds, dp hold Tp
      const VecF pj = j + kLanes <= n ? LoadU(p + j) : simd::LoadPartial(p + j, n - j);
      StoreU(ds + j, pj * (LoadU(dp + j) - pdp) * scale);
    }
    WeightedRows(ds, kp, Dp, n, row);  // dq_i = sum_j ds_j k_j
    simd::AddTo(dq + i * ld, row, D);
    OuterUpdates(ds, qi, p, g, n, Dp, dk_l, dv_l);
  }
  for (int64_t j = 0; j < T; ++j) {
    simd::AddTo(dk + j * ld, dk_l + j * Dp, D);
    simd::AddTo(dv + j * ld, dv_l + j * Dp, D);
  }
}

}  // namespace

void AttentionForward(const float* q, const float* k, const float* v, int64_t B, int64_t T, int64_t NH,
                      int64_t D, float* probs, float* out, ThreadPool& pool) {
  const float scale = ScoreScale(D);
  const int64_t ld = NH * D;
  const int64_t Tp = RoundUp(T), Dp = RoundUp(D);
  pool.ParallelFor(B * NH, 2 * T * T * D, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> buf;
    float* scratch = simd::Scratch(buf, D * Tp + T * Dp + Tp + Dp);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t base = (bh / NH) * T * ld + (bh % NH) * D;  // (b, t = 0, h)
      ForwardHead(q + base, k + base, v + base, T, ld, D, scale, probs + bh * T * T, out + base, scratch);
    }
  });
}

void AttentionBackward(const float* dout, const float* q, const float* k, const float* v, const float* probs,
                       int64_t B, int64_t T, int64_t NH, int64_t D, float* dq, float* dk, float* dv,
                       ThreadPool& pool) {
  const float scale = ScoreScale(D);
  const int64_t ld = NH * D;
  const int64_t Tp = RoundUp(T), Dp = RoundUp(D);
  pool.ParallelFor(B * NH, 4 * T * T * D, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> buf;
    float* scratch = simd::Scratch(buf, D * Tp + 3 * T * Dp + 2 * Tp + 3 * Dp);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t base = (bh / NH) * T * ld + (bh % NH) * D;
      BackwardHead(dout + base, q + base, k + base, v + base, probs + bh * T * T, T, ld, D, scale, dq + base,
                   dk + base, dv + base, scratch);
    }
  });
}

void AttentionDecode(const float* q, const float* k_cache, const float* v_cache, int64_t len, int64_t NH,
                     int64_t D, float* out, float* scratch, ThreadPool& pool) {
  const float scale = ScoreScale(D);
  const int64_t ld = NH * D;
  const int64_t Lp = RoundUp(len), Dp = RoundUp(D);
  pool.ParallelFor(NH, 4 * len * D, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> buf;
    float* kt = simd::Scratch(buf, D * Lp + len * Dp + Lp + Dp);
    float* vp = kt + D * Lp;
    float* s = vp + len * Dp;
    float* o = s + Lp;
    for (int64_t h = begin; h < end; ++h) {
      PackHead(k_cache + h * D, v_cache + h * D, ld, len, D, Lp, kt, vp);
      AttendRow(q + h * D, kt, Lp, vp, len, D, scale, s, o, scratch + h * len, out + h * D);
    }
  });
}

}  // namespace lanlm::engine
