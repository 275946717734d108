// The q8 GEMV block on AVX-512 with VNNI: two consecutive groups of 32 per 512-bit vector, the
// layout of gemv.h's 16 lanes (even group in lanes 0-7, odd in 8-15), so one vpdpbusd, one
// conversion and one FMA serve 64 weights of a row. The stored weights q + 128 are vpdpbusd's
// unsigned operand and the signed activations its other; the accumulator starts at -128 *
// (sum of each lane's four activations), computed once per pair of groups for the four rows,
// so each lane holds the exact sum of four q * x (|sum| <= 4 * 255 * 127). Per row and pair of
// groups that is: load, vpdpbusd, vcvtdq2ps, vpermps (the two groups' scale products, computed
// 16 groups at a time per row) and vfmadd, against load, vpsignb, vpdpbusd, vcvtdq2ps, vmulss,
// vbroadcastss and vfmadd per single group before. An odd last group runs in the lower half
// with a masked FMA (the upper lanes keep their bits, as the reference adds nothing there).
#include <algorithm>

#include "engine/ops/gemv_q8_kernels.h"

#if defined(LANLM_Q8_AVX512)
#include <immintrin.h>

namespace lanlm::engine::q8_internal {
namespace {

typedef float V16F __attribute__((vector_size(64)));
typedef int32_t V16I __attribute__((vector_size(64)));

// gemv.h's reduction of the 16 lanes (l + 8, then + 4, + 2, + 1) for four vectors at once:
// each output by the same additions in the same order (a + b and b + a are the same bits),
// with whole-vector shuffles instead of four chains of extracts and scalar adds. Vector
// builtins, not intrinsics: GCC 12's extract and shuffle intrinsics warn (maybe-uninitialized)
// in the -O1 sanitizer build.
inline void ReduceFour(const __m512* v, float* out) {
  typedef float V4F __attribute__((vector_size(16)));
  const V16F a = reinterpret_cast<V16F>(v[0]), b = reinterpret_cast<V16F>(v[1]);
  const V16F c = reinterpret_cast<V16F>(v[2]), d = reinterpret_cast<V16F>(v[3]);
  // l + 8: [a's 8 sums, b's 8 sums] and [c's, d's].
  const V16F ab = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
                  __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const V16F cd = __builtin_shufflevector(c, d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
                  __builtin_shufflevector(c, d, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  // l + 4: quarter j holds output j's four sums.
  const V16F q = __builtin_shufflevector(ab, cd, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
                 __builtin_shufflevector(ab, cd, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  // l + 2, then l + 1, within each quarter.
  const V16F h = q + __builtin_shufflevector(q, q, 2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15);
  const V16F z = h + __builtin_shufflevector(h, h, 1, 1, 1, 1, 5, 5, 5, 5, 9, 9, 9, 9, 13, 13, 13, 13);
  const V4F r = __builtin_shufflevector(z, z, 0, 4, 8, 12);
  __builtin_memcpy(out, &r, sizeof(r));
}

// Lanes pick[i] of v (vpermps), and int32 to fp32 (vcvtdq2ps), as vector builtins: GCC 12's
// _mm512_permutexvar_ps and _mm512_cvtepi32_ps start from _mm512_undefined_ps and warn
// (maybe-uninitialized) under -Werror.
// Clang (the fuzz build) has no __builtin_shuffle and its intrinsic does not warn.
inline __m512 Spread(__m512 v, V16I pick) {
#if defined(__clang__)
  return _mm512_permutexvar_ps(reinterpret_cast<__m512i>(pick), v);
#else
  return reinterpret_cast<__m512>(__builtin_shuffle(reinterpret_cast<V16F>(v), pick));
#endif
}
inline __m512 ToFloat(__m512i v) { return reinterpret_cast<__m512>(__builtin_convertvector(reinterpret_cast<V16I>(v), V16F)); }

// Two groups of a weight row. kFromMemory: as two 32-byte loads. Rows are 9 or 24 groups long
// (C = 288, F = 768), so every other row starts 32 bytes into a cache line and one 64-byte
// load of it spans two lines: streamed from memory (the first activation row of a block) that
// measured 0.5-0.75x (INF15M batch 1 and 8 sessions); from L1 (the block's other activation
// rows) one 64-byte load is 6 % faster than two (768 x 288, 32 rows). Joined with a vector
// builtin: GCC 12's _mm512_inserti64x4 warns like the intrinsics above.
template <bool kFromMemory>
inline __m512i LoadGroups(const uint8_t* p) {
  if constexpr (kFromMemory) {
    typedef int64_t V4Q __attribute__((vector_size(32)));
    const V4Q lo = reinterpret_cast<V4Q>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    const V4Q hi = reinterpret_cast<V4Q>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + kQ8Group)));
    return reinterpret_cast<__m512i>(__builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7));
  } else {
    return _mm512_loadu_si512(p);
  }
}

// R weight rows (one block, or two: R = 8 shares each pair's activation load and accumulator
// start between twice the rows) times one activation row (xq, xs), reduced: out[j] = row j · x.
// Each row's arithmetic is the same for R = 4 and 8.
template <int R, bool kFromMemory>
[[gnu::always_inline]] inline void Pass(const uint8_t* const* q, const float* const* scale, const int8_t* xq,
                                        const float* xs, int64_t groups, float* out) {
  const __m512i offset = _mm512_set1_epi8(static_cast<char>(kQ8WeightOffset));
  __m512 acc[R];
#pragma GCC unroll 8
  for (int j = 0; j < R; ++j) acc[j] = _mm512_setzero_ps();
  // Chunks of up to 16 groups: each row's 16 scale products ws * xs in one vmulps, then one
  // vpermps per pair of groups spreads products g and g + 1 to the two halves.
  for (int64_t c = 0; c < groups; c += 16) {
    const int64_t m = std::min<int64_t>(16, groups - c);
    const __mmask16 in_chunk = static_cast<__mmask16>((1u << m) - 1u);
    const __m512 xscale = _mm512_maskz_loadu_ps(in_chunk, xs + c);
    __m512 prod[R];
#pragma GCC unroll 8
    for (int j = 0; j < R; ++j) prod[j] = _mm512_mul_ps(_mm512_maskz_loadu_ps(in_chunk, scale[j] + c), xscale);
    V16I pick = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    int64_t g = c;
    for (; g + 2 <= c + m; g += 2, pick += 2) {
      const __m512i xv = _mm512_loadu_si512(xq + g * kQ8Group);
      const __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(),
                                             _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, xv));
#pragma GCC unroll 8
      for (int j = 0; j < R; ++j) {
        const __m512i p = _mm512_dpbusd_epi32(start, LoadGroups<kFromMemory>(q[j] + g * kQ8Group), xv);
        acc[j] = _mm512_fmadd_ps(ToFloat(p), Spread(prod[j], pick), acc[j]);
      }
    }
    if (g < c + m) {  // an odd last group: the lower half only (masked loads zero the upper)
      const __m512i xv = _mm512_maskz_loadu_epi8(0xffffffffull, xq + g * kQ8Group);
      const __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(),
                                             _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, xv));
#pragma GCC unroll 8
      for (int j = 0; j < R; ++j) {
        const __m512i wv = _mm512_maskz_loadu_epi8(0xffffffffull, q[j] + g * kQ8Group);
        const __m512i p = _mm512_dpbusd_epi32(start, wv, xv);
        // Lanes 8-15 keep their bits, as the reference adds nothing there.
        acc[j] = _mm512_mask3_fmadd_ps(ToFloat(p), Spread(prod[j], pick), acc[j], 0x00ff);
      }
    }
  }
#pragma GCC unroll 2
  for (int j = 0; j < R; j += 4) ReduceFour(acc + j, out + j);
}

}  // namespace

[[gnu::noipa]] void GemvBlockAvx512(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y,
                                    int64_t ldy) {
  const int64_t cols = w.cols, groups = cols / kQ8Group;
  const int64_t o0 = block * kGemvRows;
  const BlockRows rows = RowsOf(w, block);
  for (int64_t r = 0; r < x.n; ++r) {
    float out[4];
    if (r == 0) {
      Pass<4, true>(rows.q, rows.scale, x.xq, x.xs, groups, out);
    } else {
      Pass<4, false>(rows.q, rows.scale, x.xq + r * cols, x.xs + r * groups, groups, out);
    }
    StoreRows(out, rows.valid, y + r * ldy + o0);
  }
}

[[gnu::noipa]] void GemvBlocksAvx512(const WeightMatrix& w, const GemvInput& x, int64_t begin, int64_t end,
                                     float* y, int64_t ldy) {
  const int64_t cols = w.cols, groups = cols / kQ8Group;
  int64_t b = begin;
  for (; b + 2 <= end && (b + 2) * kGemvRows <= w.rows; b += 2) {
    const BlockRows lo = RowsOf(w, b), hi = RowsOf(w, b + 1);
    const uint8_t* q[8] = {lo.q[0], lo.q[1], lo.q[2], lo.q[3], hi.q[0], hi.q[1], hi.q[2], hi.q[3]};
    const float* scale[8] = {lo.scale[0], lo.scale[1], lo.scale[2], lo.scale[3],
                             hi.scale[0], hi.scale[1], hi.scale[2], hi.scale[3]};
    for (int64_t r = 0; r < x.n; ++r) {
      float out[8];
      if (r == 0) {
        Pass<8, true>(q, scale, x.xq, x.xs, groups, out);
      } else {
        Pass<8, false>(q, scale, x.xq + r * cols, x.xs + r * groups, groups, out);
      }
      __builtin_memcpy(y + r * ldy + b * kGemvRows, out, sizeof(out));  // constant size: no call
    }
  }
  for (; b < end; ++b) GemvBlockAvx512(w, x, b, y, ldy);
}

}  // namespace lanlm::engine::q8_internal

#endif  // LANLM_Q8_AVX512
