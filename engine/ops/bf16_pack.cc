// bf16 pair packing (bf16_pack.h): a scalar reference and two AVX2 paths, one per operand
// layout the matmuls produce (lanes contiguous, or the reduction contiguous). The AVX2 code
// carries its own target attribute, so it exists in every build and runs where the CPU has AVX2
// (every CPU that runs the bf16 GEMM: AVX-512F CPUs have it too).
#include "engine/ops/bf16_pack.h"

#include <algorithm>

#include <immintrin.h>

#include "engine/ops/bf16.h"

namespace lanlm::engine::gemm_bf16 {
namespace {

#define LANLM_PACK_AVX2 __attribute__((target("avx2")))

// Bf16FromFloat of 8 floats at once, the bf16 bits left in the high half of each lane (the low
// half is garbage): zero exponent -> signed zero, NaN -> quiet NaN, else round to nearest even.
LANLM_PACK_AVX2 inline __m256i RoundHigh(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i exp_zero =
      _mm256_cmpeq_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7F800000)), _mm256_setzero_si256());
  const __m256i nan =
      _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF)), _mm256_set1_epi32(0x7F800000));
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb));
  r = _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x00400000)), nan);
  return _mm256_blendv_epi8(r, _mm256_and_si256(u, _mm256_set1_epi32(static_cast<int>(0x80000000u))), exp_zero);
}

// 8 pair words from the 8 even-index and 8 odd-index elements of the same lanes.
LANLM_PACK_AVX2 inline __m256i PairWords(__m256 even, __m256 odd) {
  return _mm256_or_si256(_mm256_and_si256(RoundHigh(odd), _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))),
                         _mm256_srli_epi32(RoundHigh(even), 16));
}

// 8 pair words from 16 consecutive reduction elements (lo: k..k+7, hi: k+8..k+15), in pair
// order: packus interleaves 128-bit halves, the permute puts them back.
LANLM_PACK_AVX2 inline __m256i AdjacentPairWords(__m256 lo, __m256 hi) {
  const __m256i packed =
      _mm256_packus_epi32(_mm256_srli_epi32(RoundHigh(lo), 16), _mm256_srli_epi32(RoundHigh(hi), 16));
  return _mm256_permute4x64_epi64(packed, 0xD8);
}

// Lanes [lane0, lane0 + 8) below limit: all ones, else zero.
LANLM_PACK_AVX2 inline __m256i LaneMask(int lane0, int limit) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(limit - lane0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The first n (1..8) words of v to d (no masked store: AMD microcodes VMASKMOV stores).
LANLM_PACK_AVX2 inline void StoreWords(uint32_t* d, __m256i v, int n) {
  if (n == 8) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), v);
    return;
  }
  __m128i rest = _mm256_castsi256_si128(v);
  if (n >= 4) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d), rest);
    rest = _mm256_extracti128_si256(v, 1);
    d += 4;
    n -= 4;
  }
  if (n >= 2) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(d), rest);
    rest = _mm_srli_si128(rest, 8);
    d += 2;
    n -= 2;
  }
  if (n == 1) d[0] = static_cast<uint32_t>(_mm_cvtsi128_si32(rest));
}

// r[i] (lane i: words j = 0..7) becomes r[j] (word j: lanes i = 0..7).
LANLM_PACK_AVX2 inline void Transpose8x8(__m256i r[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x20);
    r[j + 4] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x31);
  }
}

// s_lane == 1: the two elements of a pair sit in two rows of the source, the lanes along each.
// A masked load gives 0.0 (word 0) past the valid lanes.
LANLM_PACK_AVX2 void PackLanesContiguous(PackSource x, int64_t K, int w, uint32_t* dst) {
  const int64_t k2 = (K + 1) / 2;
  for (int64_t p = 0; p < k2; ++p) {
    const float* even = x.base + 2 * p * x.s_k;
    const bool has_odd = 2 * p + 1 < K;
    uint32_t* d = dst + p * w;
    int lane0 = 0;
    for (; lane0 + 8 <= x.valid && lane0 + 8 <= w; lane0 += 8) {  // full runs: plain loads and stores
      const __m256 o = has_odd ? _mm256_loadu_ps(even + x.s_k + lane0) : _mm256_setzero_ps();
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + lane0), PairWords(_mm256_loadu_ps(even + lane0), o));
    }
    for (; lane0 < w; lane0 += 8) {  // the ragged edge
      const __m256i load = LaneMask(lane0, x.valid);
      const __m256 e = _mm256_maskload_ps(even + lane0, load);
      const __m256 o = has_odd ? _mm256_maskload_ps(even + x.s_k + lane0, load) : _mm256_setzero_ps();
      StoreWords(d + lane0, PairWords(e, o), std::min(8, w - lane0));
    }
  }
}

// s_k == 1: a pair is two adjacent floats of one lane's row. Per group of 8 lanes, 8 pairs of
// each lane at a time (16 floats), transposed so each pair index stores its lanes' words in one
// run; lanes past valid are zero; the last K % 16 elements go word by word.
LANLM_PACK_AVX2 void PackKContiguous(PackSource x, int64_t K, int w, uint32_t* dst) {
  const int64_t k2 = (K + 1) / 2;
  const int64_t p_vec = K / 16 * 8;
  for (int lane0 = 0; lane0 < w; lane0 += 8) {
    const int n = std::min(8, w - lane0);
    for (int64_t p = 0; p < p_vec; p += 8) {
      __m256i r[8];
      for (int i = 0; i < 8; ++i) {
        r[i] = _mm256_setzero_si256();
        if (lane0 + i >= x.valid) continue;
        const float* q = x.base + (lane0 + i) * x.s_lane + 2 * p;
        r[i] = AdjacentPairWords(_mm256_loadu_ps(q), _mm256_loadu_ps(q + 8));
      }
      Transpose8x8(r);
      for (int j = 0; j < 8; ++j) StoreWords(dst + (p + j) * w + lane0, r[j], n);
    }
    for (int64_t p = p_vec; p < k2; ++p) {
      for (int lane = lane0; lane < lane0 + n; ++lane) {
        const float* q = x.base + std::min(lane, x.valid - 1) * x.s_lane;  // in range; the word is 0 past valid
        dst[p * w + lane] = lane < x.valid ? Bf16Pair(q[2 * p], 2 * p + 1 < K ? q[2 * p + 1] : 0.0f) : 0;
      }
    }
  }
}

bool HasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}

}  // namespace

void PackPairsScalar(PackSource x, int64_t K, int w, uint32_t* dst) {
  const int64_t k2 = (K + 1) / 2;
  auto at = [&](int lane, int64_t k) { return k < K ? x.base[lane * x.s_lane + k * x.s_k] : 0.0f; };
  for (int64_t p = 0; p < k2; ++p) {
    for (int lane = 0; lane < x.valid; ++lane) dst[p * w + lane] = Bf16Pair(at(lane, 2 * p), at(lane, 2 * p + 1));
    for (int lane = x.valid; lane < w; ++lane) dst[p * w + lane] = 0;
  }
}

void PackPairs(PackSource x, int64_t K, int w, uint32_t* dst) {
  if (HasAvx2() && x.s_lane == 1) {
    PackLanesContiguous(x, K, w, dst);
  } else if (HasAvx2() && x.s_k == 1) {
    PackKContiguous(x, K, w, dst);
  } else {
    PackPairsScalar(x, K, w, dst);
  }
}

}  // namespace lanlm::engine::gemm_bf16
