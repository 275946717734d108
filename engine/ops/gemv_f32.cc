// fp32 and bf16 decoding GEMV (see gemv.h), written once over the portable vector type of
// simd.h, so the same source serves AVX-512, AVX2 and SSE builds. Every output keeps two
// accumulators, summed and reduced in a fixed order at the end (DotRow), so its result depends
// only on its values and `cols`, whether computed alone or in a batched tile. bf16 rows are widened exactly, lane by lane, before the same FMAs, so a
// bf16 product equals the fp32 product on the widened weights bit for bit.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "engine/ops/gemv.h"
#include "engine/ops/simd.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace lanlm::engine {
namespace {

using simd::kLanes;
using simd::LoadPartial;
using simd::LoadU;
using simd::VecF;

typedef uint16_t VecH __attribute__((vector_size(kLanes * sizeof(uint16_t))));
typedef uint32_t VecU __attribute__((vector_size(kLanes * sizeof(uint32_t))));

inline VecF LoadW(const float* p) { return LoadU(p); }
inline VecF LoadW(const uint16_t* p) {
  VecH h;
  std::memcpy(&h, p, sizeof(h));
  const VecU u = __builtin_convertvector(h, VecU) << 16;
  VecF f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
inline VecF LoadWPartial(const float* p, int64_t n) { return LoadPartial(p, n); }
inline VecF LoadWPartial(const uint16_t* p, int64_t n) {
  uint16_t tmp[kLanes] = {};
  std::memcpy(tmp, p, static_cast<size_t>(n) * sizeof(uint16_t));
  return LoadW(tmp);
}

// simd::ReduceAdd's sum of the lanes (pairwise halves: lane i + lane i + width, for width =
// kLanes / 2, ..., 1) with register shuffles: the same additions in the same order, so the
// same bits. ReduceAdd's store-and-loop compiled to scalar adds through the stack, about a
// third of a batched tile's time (perf, config M, 32 sessions, AVX-512).
inline float HalvingSum(VecF v) {
#if defined(__AVX512F__)
  __m256 lo, hi;  // halves by copy: GCC 12's extract intrinsics warn (maybe-uninitialized)
  std::memcpy(&lo, &v, sizeof(lo));
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(lo), sizeof(hi));
  const __m256 y = _mm256_add_ps(lo, hi);
#elif defined(__AVX2__)
  const __m256 y = reinterpret_cast<__m256>(v);
#endif
#if defined(__AVX512F__) || defined(__AVX2__)
  const __m128 x = _mm_add_ps(_mm256_castps256_ps128(y), _mm256_extractf128_ps(y, 1));
#elif defined(__SSE2__)
  const __m128 x = reinterpret_cast<__m128>(v);
#endif
#if defined(__SSE2__)
  const __m128 two = _mm_add_ps(x, _mm_movehl_ps(x, x));               // lanes 0 + 2, 1 + 3
  return _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps(two, two, 1)));  // (0 + 2) + (1 + 3)
#else
  return simd::ReduceAdd(v);
#endif
}

// w · x over n values, the arithmetic every output of this file has: two accumulators, a0
// taking vectors 0, 2, 4, ... of the row and a1 vectors 1, 3, 5, ...; a last whole vector
// (odd count) goes to a0, a partial tail to a1; then HalvingSum(a0 + a1). Two, not four: a
// batched tile then holds 2 rows x 3 sessions of accumulators in the 16 AVX2 registers
// (5 loads per 6 FMAs, against 4 per 3 with four accumulators: 1.3x in a micro-benchmark),
// and one row streamed from memory is no slower (13.1-13.7 GB/s against 13.1-13.5 for the
// 32000 x 288 classifier; rows in cache about 10 % slower). The chains go through simd::Fma
// so -ffast-math cannot reassociate them differently in the fp32 and bf16 instantiations
// (bf16 must equal fp32 on the widened weights bit for bit).
template <typename T>
[[gnu::always_inline]] inline float DotRow(const T* w, const float* x, int64_t n) {
  VecF a0 = {}, a1 = {};
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    a0 = simd::Fma(a0, LoadW(w + i), LoadU(x + i));
    a1 = simd::Fma(a1, LoadW(w + i + kLanes), LoadU(x + i + kLanes));
  }
  if (i + kLanes <= n) {
    a0 = simd::Fma(a0, LoadW(w + i), LoadU(x + i));
    i += kLanes;
  }
  if (i < n) a1 = simd::Fma(a1, LoadWPartial(w + i, n - i), LoadPartial(x + i, n - i));
  return HalvingSum(a0 + a1);
}

// DotRow for R weight rows (`n` apart) times S activation rows (`n` apart) at once: each
// weight vector is loaded once for S sessions and each activation vector once for R rows,
// and every output keeps DotRow's accumulators and order, so each result equals DotRow's
// bit for bit. y[s * ldy + r] = w[r] · x[s].
template <int R, int S>
[[gnu::always_inline]] inline void DotTile(const float* w, const float* x, int64_t n, float* y, int64_t ldy) {
  VecF a[R][S][2] = {};
  auto step = [&](int64_t i, int j, auto load_w, auto load_x) {
    VecF wv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) wv[r] = load_w(w + r * n + i);
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s) {
      const VecF xv = load_x(x + s * n + i);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) a[r][s][j] = simd::Fma(a[r][s][j], wv[r], xv);
    }
  };
  const auto full = [](const float* p) { return LoadU(p); };
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    step(i, 0, full, full);
    step(i + kLanes, 1, full, full);
  }
  if (i + kLanes <= n) {
    step(i, 0, full, full);
    i += kLanes;
  }
  if (i < n) {
    const int64_t m = n - i;
    const auto part = [m](const float* p) { return LoadPartial(p, m); };
    step(i, 1, part, part);
  }
#pragma GCC unroll 4
  for (int s = 0; s < S; ++s) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) y[s * ldy + r] = HalvingSum(a[r][s][0] + a[r][s][1]);
  }
}

template <int R>
void DotTileSessions(const float* w, const float* x, int64_t n, int64_t sessions, float* y, int64_t ldy) {
  switch (sessions) {
    case 3: DotTile<R, 3>(w, x, n, y, ldy); break;
    case 2: DotTile<R, 2>(w, x, n, y, ldy); break;
    default: DotTile<R, 1>(w, x, n, y, ldy); break;
  }
}

inline constexpr int64_t kSessionTile = 3;
// With AVX-512's 32 vector registers a whole block of 4 rows x 3 sessions fits (24
// accumulators, 4 weight vectors, 1 activation vector): 7 loads per 12 FMAs instead of 5 per 6.
// Each output keeps its own two accumulators, so the bits do not change.
inline constexpr bool kWideTiles = simd::kLanes == 16;

// bf16 batch 1 asks for the lines 4096 weights (8 KB) ahead of each row it reads: rows run in
// order within a ParallelFor range, and with the hardware prefetcher alone the 1-row kernel
// ran 1.2-1.5x slower than a plain read of the same bytes (micro-benchmark, 52,800 x 288;
// 8-16 KB ahead measured best of 1-32 KB). fp32 is left to the hardware: in the decoding
// benchmark the same prefetch made its tokens 0.85-0.94x as fast (5 alternating rounds), though
// it gained in the micro-benchmark (BENCHMARKS.md, issue 11, ninth session). Addresses past
// the matrix's end are only prefetched (no fault, no dereference). The timing changes, never
// the arithmetic.
inline constexpr uintptr_t kPrefetchBytes = 8192;
inline void PrefetchAhead(const uint16_t* row, int64_t cols) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(row) + kPrefetchBytes;
  for (uintptr_t b = 0; b < static_cast<uintptr_t>(cols) * sizeof(uint16_t); b += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(at + b));
  }
}

// One activation row: one weight row at a time, streamed once from memory (one sequential
// stream measured faster than interleaved rows when memory is the limit: 13 against 9 GB/s
// for two rows). Several activation rows (batched decoding, short prompts): the block's rows
// (widened once for bf16, exactly, so the products keep their bits) stay in L1 while tiles of
// kSessionTile activation rows pass over them two rows at a time.
template <typename T>
[[gnu::noipa]] void BlockRows(const T* w, int64_t rows, int64_t cols, const float* x, int64_t n, int64_t block,
                              float* y, int64_t ldy) {
  const int64_t o0 = block * kGemvRows, o1 = std::min(rows, o0 + kGemvRows);
  if (n == 1) {
    for (int64_t o = o0; o < o1; ++o) {
      if constexpr (std::is_same_v<T, uint16_t>) PrefetchAhead(w + o * cols, cols);
      y[o] = DotRow(w + o * cols, x, cols);
    }
    return;
  }
  const float* wide = nullptr;
  if constexpr (std::is_same_v<T, float>) {
    wide = w + o0 * cols;
  } else {
    thread_local AlignedVector<float> buf;
    if (static_cast<int64_t>(buf.size()) < (o1 - o0) * cols) buf.resize((o1 - o0) * cols);
    float* dst = buf.data();
    for (int64_t i = 0; i < (o1 - o0) * cols; ++i) dst[i] = Bf16ToFloat(w[o0 * cols + i]);
    wide = dst;
  }
  for (int64_t r = 0; r < n; r += kSessionTile) {
    const int64_t m = std::min(kSessionTile, n - r);
    if (kWideTiles && o1 - o0 == 4) {
      DotTileSessions<4>(wide, x + r * cols, cols, m, y + r * ldy + o0, ldy);
      continue;
    }
    for (int64_t o = o0; o < o1; o += 2) {
      const float* row = wide + (o - o0) * cols;
      if (o + 1 < o1) {
        DotTileSessions<2>(row, x + r * cols, cols, m, y + r * ldy + o, ldy);
      } else {
        DotTileSessions<1>(row, x + r * cols, cols, m, y + r * ldy + o, ldy);
      }
    }
  }
}

}  // namespace

const char* WeightFormatName(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32: return "fp32";
    case WeightFormat::kBf16: return "bf16";
    case WeightFormat::kQ8: return "q8";
  }
  return "?";
}

void GemvBlock(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy) {
  switch (w.format) {
    case WeightFormat::kF32:
      BlockRows(w.f32, w.rows, w.cols, x.x, x.n, block, y, ldy);
      return;
    case WeightFormat::kBf16:
      BlockRows(w.bf16, w.rows, w.cols, x.x, x.n, block, y, ldy);
      return;
    case WeightFormat::kQ8:
      GemvBlockQ8(w, x, block, y, ldy);
      return;
  }
}

void GemvBlocks(const WeightMatrix& w, const GemvInput& x, int64_t begin, int64_t end, float* y, int64_t ldy) {
  if (w.format == WeightFormat::kQ8) {
    GemvBlocksQ8(w, x, begin, end, y, ldy);
    return;
  }
  for (int64_t b = begin; b < end; ++b) GemvBlock(w, x, b, y, ldy);
}

uint16_t FloatToBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace lanlm::engine
