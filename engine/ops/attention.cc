// Causal attention: training forward (parallel over (b, h), probabilities saved) and decoding
// over a KV cache; the backward is in attention_backward.cc. In the forward, each (b, h) first
// packs its keys transposed (D x T) and its values (T x D) into GEMM panels, so scores are
// vectorised across keys (no horizontal sums) and p·v across the head dimension. A decode step
// reads keys transposed and values as rows in place: AttentionDecodeKt from a cache kept in that
// layout (keys appended transposed once per token), AttentionDecode (the plain reference,
// row-major cache) after packing them per call. Every score is one FMA chain over d and every
// output one over j in the forward's order, so a decoded position equals the corresponding row
// of the training forward bit for bit.
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
using simd::Splat;
using simd::StoreU;
using simd::VecF;

int64_t RoundUp(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// 1 / sqrt(D), computed by one function so the forward and decoding agree to the bit.
[[gnu::noipa]] float ScoreScale(int64_t D) { return 1.0f / std::sqrt(static_cast<float>(D)); }

// Packs n rows of D floats at stride ld: kt (D x ldt) = transposed, zero-padded to ldt
// columns; vp (n x Dp) = rows zero-padded to Dp. Either may be null.
void PackHead(const float* k, const float* v, int64_t ld, int64_t n, int64_t D, int64_t ldt, float* kt, float* vp) {
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

// Where a head's keys sit: key j's dimension d at At(j) + d * Stride(j). Keys come in blocks of
// kKeyBlock positions at block_stride; inside block b each dimension's row holds the block's
// positions contiguously (row stride w, the block's width). The reference packs a head as one
// D x ldt matrix (block_stride = kKeyBlock, w = ldt); a decoding cache is attention.h's layout.
struct KeyView {
  const float* p;
  int64_t block_stride;
  int64_t width;       // row stride of every block but `last`
  int64_t head_rows;   // rows of the block before this head's (h * D in a cache, 0 packed)
  int64_t last = -1;   // a narrower last block (the cache's capacity % kKeyBlock), or none
  int64_t last_width = 0;
  int64_t Stride(int64_t j) const { return j / kKeyBlock == last ? last_width : width; }
  const float* At(int64_t j) const { return p + j / kKeyBlock * block_stride + head_rows * Stride(j) + j % kKeyBlock; }
};
static_assert(kKeyBlock % kLanes == 0, "a vector of keys never spans two blocks");

// Head h of a decoding cache (attention.h's layout, C = NH * D).
KeyView CacheKeys(const float* k_blocks, int64_t capacity, int64_t h, int64_t NH, int64_t D) {
  const int64_t rem = capacity % kKeyBlock;
  return KeyView{k_blocks, kKeyBlock * NH * D, kKeyBlock, h * D, rem > 0 ? capacity / kKeyBlock : -1, rem};
}

// Keys [0, L) of a head into kt (D x L), row-major: a strided operand for the prompt's GEMM.
void GatherKeys(const KeyView& k, int64_t L, int64_t D, float* kt) {
  for (int64_t j0 = 0; j0 < L; j0 += kKeyBlock) {
    const int64_t m = std::min<int64_t>(kKeyBlock, L - j0);
    const float* src = k.At(j0);
    const int64_t w = k.Stride(j0);
    for (int64_t d = 0; d < D; ++d) std::memcpy(kt + d * L + j0, src + d * w, sizeof(float) * m);
  }
}

// s[c] for NB vectors of kLanes keys, vector b's keys at bt[b] + d * ld[b]: one FMA chain over
// d per key.
template <int NB>
void ScoreBlocks(const float* a, const float* const* bt, const int64_t* ld, int64_t D, float* s) {
  VecF c[NB];
  for (int b = 0; b < NB; ++b) c[b] = VecF{};
  for (int64_t d = 0; d < D; ++d) {
    const VecF ad = Splat(a[d]);
    for (int b = 0; b < NB; ++b) c[b] = simd::Fma(c[b], ad, LoadU(bt[b] + d * ld[b]));
  }
  for (int b = 0; b < NB; ++b) StoreU(s + b * kLanes, c[b]);
}

// The last n (< kLanes) keys: ScoreBlocks<1> with partial loads, so nothing past key n - 1 is
// read and the lanes below n run the same chain as a full vector's.
void ScoreTail(const float* a, const float* bt, int64_t ldt, int64_t n, int64_t D, float* s) {
  VecF c{};
  for (int64_t d = 0; d < D; ++d, bt += ldt) c = simd::Fma(c, Splat(a[d]), simd::LoadPartial(bt, n));
  simd::StorePartial(s, c, n);
}

// NB vectors of keys from j on.
template <int NB>
void ScoreVectors(const float* a, const KeyView& k, int64_t j, int64_t D, float* s) {
  const float* bt[NB];
  int64_t ld[NB];
  for (int b = 0; b < NB; ++b) {
    bt[b] = k.At(j + b * kLanes);
    ld[b] = k.Stride(j + b * kLanes);
  }
  ScoreBlocks<NB>(a, bt, ld, D, s + j);
}

// s[j] = sum_d a[d] * key_j[d] for j < n: one FMA chain over d in order per key, vectorised
// across keys (up to four vectors at a time for latency), the same bits for every key
// wherever it falls. Reads only keys [0, n).
void ScoresAcross(const float* a, const KeyView& k, int64_t n, int64_t D, float* s) {
  int64_t j = 0;
  for (; j + 4 * kLanes <= n; j += 4 * kLanes) ScoreVectors<4>(a, k, j, D, s);
  switch ((n - j) / kLanes) {  // 0 to 3 full vectors left
    case 3:
      ScoreVectors<3>(a, k, j, D, s);
      break;
    case 2:
      ScoreVectors<2>(a, k, j, D, s);
      break;
    case 1:
      ScoreVectors<1>(a, k, j, D, s);
      break;
    default:
      break;
  }
  j += (n - j) / kLanes * kLanes;
  if (j < n) ScoreTail(a, k.At(j), k.Stride(j), n - j, D, s + j);
}

// out[c] = sum_j w[j] * rows[j * ld + c] for c < NV * kLanes (the last vector holds only
// `tail` columns when tail > 0: partial loads, nothing past them read): one FMA chain over j
// in order per element, exactly as the GEMM micro-kernel sums P·V in the training forward.
template <int NV>
void WeightedRowsChunk(const float* w, const float* rows, int64_t ld, int64_t n, int64_t tail, float* out) {
  VecF acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = VecF{};
  for (int64_t j = 0; j < n; ++j) {
    const VecF wj = Splat(w[j]);
    const float* r = rows + j * ld;
    for (int v = 0; v < NV; ++v) {
      const VecF x = (tail > 0 && v == NV - 1) ? simd::LoadPartial(r + v * kLanes, tail) : LoadU(r + v * kLanes);
      acc[v] = simd::Fma(acc[v], wj, x);
    }
  }
  for (int v = 0; v < NV; ++v) StoreU(out + v * kLanes, acc[v]);
}

// out (RoundUp(D)) = sum_j w[j] * rows[j] over the first D columns of n rows at stride ld
// (each element's order depends only on n; lanes past D are zero).
void WeightedRows(const float* w, const float* rows, int64_t ld, int64_t D, int64_t n, float* out) {
  int64_t c = 0;
  for (; c + 4 * kLanes <= D; c += 4 * kLanes) WeightedRowsChunk<4>(w, rows + c, ld, n, 0, out + c);
  const int64_t tail = (D - c) % kLanes;
  switch ((D - c + kLanes - 1) / kLanes) {  // 0 to 4 vectors left, the last one partial if tail > 0
    case 4:
      WeightedRowsChunk<4>(w, rows + c, ld, n, tail, out + c);
      break;
    case 3:
      WeightedRowsChunk<3>(w, rows + c, ld, n, tail, out + c);
      break;
    case 2:
      WeightedRowsChunk<2>(w, rows + c, ld, n, tail, out + c);
      break;
    case 1:
      WeightedRowsChunk<1>(w, rows + c, ld, n, tail, out + c);
      break;
    default:
      break;
  }
}

// s (n) = scores q·k_j in, p (n) = softmax(scale * s) out (p may alias s). noipa: one compiled
// body for the forward and for decoding. Inlined, -ffast-math may fuse the scaling into the
// exponent's argument differently per call site, and a decoded row would no longer equal the
// forward's bit for bit. (Across executables the engine is built without LTO for the same
// reason, see engine/CMakeLists.txt.)
[[gnu::noipa]] void SoftmaxRow(float* s, int64_t n, float scale, float* p) {
  simd::Scale(scale, n, s);
  const float m = simd::Max(s, n);
  const float sum = simd::ExpShiftScale(s, m, 1.0f, n, p);
  simd::Scale(1.0f / sum, n, p);
}

// One query q (D) against n keys k and values v (n rows at stride ldv): p (n) =
// softmax(scale * q·k_j), out (D) = sum_j p_j v_j. Reads keys and values [0, n) only. s
// (RoundUp(n)) and o (RoundUp(D)) are scratch. Decoding only; the same arithmetic per element
// as ForwardHead's row.
[[gnu::noipa]] void AttendRow(const float* q, const KeyView& k, const float* v, int64_t ldv, int64_t n, int64_t D,
                              float scale, float* s, float* o, float* p, float* out) {
  ScoresAcross(q, k, n, D, s);
  SoftmaxRow(s, n, scale, p);
  WeightedRows(p, v, ldv, D, n, o);
  std::memcpy(out, o, sizeof(float) * D);
}

int64_t Panels(int64_t n) { return (n + gemm::kNr - 1) / gemm::kNr; }

// Scratch floats ForwardHead needs for L keys: packed kᵀ (D x L) and packed v (L x D).
int64_t ForwardScratch(int64_t L, int64_t D) { return Panels(L) * D * gemm::kNr + Panels(D) * L * gemm::kNr; }

// One (batch, head) of the forward as two small GEMMs on the shared micro-kernel: n queries
// at positions pos..pos+n-1 against keys and values 0..L-1 (L = pos + n); q and out point at
// the first query's row, v at position 0's, q, v and out rows at stride ld; kt is kᵀ (D x L) as a B operand (the
// training forward's k rows, or a decoding cache's transposed keys); probs (n, L). S = q·kᵀ (the tiles that touch
// the causal range) is written into the probability rows, each row's softmax is taken in place (zeros past the query's
// position), then out = P·v with each reduction cut to the causal range. Every score is one FMA chain over d and every
// output one over j, in order: the arithmetic of AttendRow, so decoding a position gives this row's bits. The training
// forward is pos = 0, n = T.
[[gnu::noipa]] void ForwardHead(const float* q, gemm::Operand kt, const float* v, int64_t n, int64_t pos, int64_t ld,
                                int64_t D, float scale, float* probs, float* out, float* scratch) {
  using gemm::kMr;
  using gemm::kNr;
  const int64_t L = pos + n;
  const int64_t pd = Panels(D), pl = Panels(L);
  float* bkt = scratch;            // kᵀ as B (D x L), pl panels of D x kNr
  float* bv = bkt + pl * D * kNr;  // v as B (L x D), pd panels of L x kNr
  for (int64_t j = 0; j < pl; ++j) gemm::PackBPanel(kt, D, L, j, bkt + j * D * kNr);
  for (int64_t j = 0; j < pd; ++j) gemm::PackBPanel({v, ld, 1}, L, D, j, bv + j * L * kNr);
  const int64_t blocks = (n + kMr - 1) / kMr;
  for (int64_t rb = 0; rb < blocks; ++rb) {
    const int64_t m0 = rb * kMr;
    const int m_valid = static_cast<int>(std::min<int64_t>(kMr, n - m0));
    const int64_t kend = pos + m0 + m_valid;  // keys these rows see
    for (int64_t j = 0; j * kNr < kend; ++j) {
      const int n_valid = static_cast<int>(std::min<int64_t>(kNr, L - j * kNr));
      gemm::MicroKernelRows(q + m0 * ld, ld, bkt + j * D * kNr, D, probs + m0 * L + j * kNr, L, m_valid, n_valid,
                            false);
    }
    for (int64_t i = m0; i < m0 + m_valid; ++i) {
      float* row = probs + i * L;
      const int64_t seen = pos + i + 1;
      SoftmaxRow(row, seen, scale, row);
      std::memset(row + seen, 0, sizeof(float) * (L - seen));
    }
    for (int64_t j = 0; j < pd; ++j) {
      const int n_valid = static_cast<int>(std::min<int64_t>(kNr, D - j * kNr));
      gemm::MicroKernelRows(probs + m0 * L, L, bv + j * L * kNr, kend, out + m0 * ld + j * kNr, ld, m_valid, n_valid,
                            false);
    }
  }
}

}  // namespace

void AttentionForward(const float* q, const float* k, const float* v, int64_t B, int64_t T, int64_t NH, int64_t D,
                      float* probs, float* out, ThreadPool& pool) {
  const float scale = ScoreScale(D);
  const int64_t ld = NH * D;
  pool.ParallelFor(B * NH, 2 * T * T * D, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> buf;
    float* scratch = simd::Scratch(buf, ForwardScratch(T, D));
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t base = (bh / NH) * T * ld + (bh % NH) * D;  // (b, t = 0, h)
      ForwardHead(q + base, {k + base, 1, ld}, v + base, T, 0, ld, D, scale, probs + bh * T * T, out + base, scratch);
    }
  });
}

void AttentionPrefill(const float* q, const float* k_blocks, int64_t capacity, const float* v_cache, int64_t pos,
                      int64_t n, int64_t NH, int64_t D, float* probs, float* out, ThreadPool& pool) {
  const float scale = ScoreScale(D);
  const int64_t ld = NH * D, L = pos + n;
  pool.ParallelFor(NH, 2 * n * L * D, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> buf;
    float* scratch = simd::Scratch(buf, ForwardScratch(L, D) + D * L);
    float* kt = scratch + ForwardScratch(L, D);
    for (int64_t h = begin; h < end; ++h) {
      GatherKeys(CacheKeys(k_blocks, capacity, h, NH, D), L, D, kt);
      ForwardHead(q + h * D, {kt, L, 1}, v_cache + h * D, n, pos, ld, D, scale, probs + h * n * L, out + h * D,
                  scratch);
    }
  });
}

void AttentionDecode(const float* q, const float* k_cache, const float* v_cache, int64_t len, int64_t NH, int64_t D,
                     float* out, float* scratch, ThreadPool& pool) {
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
      AttendRow(q + h * D, KeyView{kt, kKeyBlock, Lp, 0}, vp, Dp, len, D, scale, s, o, scratch + h * len, out + h * D);
    }
  });
}

void AttentionDecodeKt(const float* q, const float* k_blocks, int64_t capacity, const float* v_cache, int64_t len,
                       int64_t NH, int64_t D, float* out, float* scratch, ThreadPool& pool) {
  const float scale = ScoreScale(D);
  const int64_t ld = NH * D;
  // Affine: a thread attends to the same heads at every step, so their cached keys and values
  // stay in its core's caches.
  pool.ParallelForAffine(NH, 4 * len * D, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> buf;
    float* s = simd::Scratch(buf, RoundUp(len) + RoundUp(D));
    float* o = s + RoundUp(len);
    for (int64_t h = begin; h < end; ++h) {
      AttendRow(q + h * D, CacheKeys(k_blocks, capacity, h, NH, D), v_cache + h * D, ld, len, D, scale, s, o,
                scratch + h * len, out + h * D);
    }
  });
}

void StoreKeys(const float* k, int64_t n, int64_t pos, int64_t C, int64_t capacity, float* k_blocks) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = pos + i, w = KeyBlockWidth(j / kKeyBlock, capacity);
    float* dst = k_blocks + KeyIndex(j, 0, C, capacity);  // element c at dst[c * w]
    for (int64_t c = 0; c < C; ++c) dst[c * w] = k[i * C + c];
  }
}

}  // namespace lanlm::engine
