// The q8 GEMV block on AVX2 (compiled where the build's -march has it): one group of 32 per
// 256-bit vector. With VNNI (vpdpbusd, 256-bit form) the stored weights q + 128 (unsigned)
// multiply the signed activations directly: the accumulator starts at -128 * (sum of each
// lane's four activations), computed once per group and shared by the four rows, so the sums
// are exactly those of q * x (|sum| <= 4 * 255 * 127, no overflow). Without VNNI, vpmaddubsw
// would saturate on (q + 128) * x pairs, so the weights are moved back to signed bytes and
// multiplied as |x| (unsigned) times sign(x)·q: pair sums at most 2 * 127 * 127, then vpmaddwd
// with ones. Each group's eight sums are converted exactly to fp32 and accumulated with one
// FMA per lane, even groups into one accumulator and odd groups into another (gemv.h's lanes
// 0-7 and 8-15), then summed as the reference does, so all kernels agree bit for bit. (Computing
// each block's scale(w) * scale(x) factors before the group loop measured 10 % slower at
// batch 1: 36 products per 36 group steps at C = 288.)
#include <algorithm>

#include "engine/ops/gemv_q8_kernels.h"

#if defined(LANLM_Q8_AVX2)
#include <immintrin.h>

namespace lanlm::engine::q8_internal {
namespace {

#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(__AVXVNNI__)
#define LANLM_Q8_AVX2_VNNI 1
#endif

// Lanes summed pairwise (l + 4, then + 2, then + 1) with register shuffles: the reference's
// order, without a store and scalar loop per output.
inline float ReduceLanes(__m256 v) {
  const __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 two = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps(two, two, 1)));
}

// What one group's activation vector contributes to every row's sums: for VNNI the starting
// accumulator -128 * (sum of each lane's four values), else |x|.
struct GroupX {
  __m256i x, start;
};
inline GroupX PrepareX(__m256i xv) {
#if defined(LANLM_Q8_AVX2_VNNI)
  const __m256i offset = _mm256_set1_epi8(static_cast<char>(kQ8WeightOffset));
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  const __m256i sum = _mm256_dpbusd_epi32(_mm256_setzero_si256(), offset, xv);
#else
  const __m256i sum = _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), offset, xv);
#endif
  return {xv, _mm256_sub_epi32(_mm256_setzero_si256(), sum)};
#else
  return {xv, _mm256_sign_epi8(xv, xv)};
#endif
}

// The eight exact sums of four products q * x of one group, from the stored bytes q + 128.
inline __m256i GroupSums(const GroupX& gx, __m256i stored) {
#if defined(LANLM_Q8_AVX2_VNNI)
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(gx.start, stored, gx.x);
#else
  return _mm256_dpbusd_avx_epi32(gx.start, stored, gx.x);
#endif
#else
  const __m256i q = _mm256_xor_si256(stored, _mm256_set1_epi8(static_cast<char>(0x80)));  // q + 128 -> q
  return _mm256_madd_epi16(_mm256_maddubs_epi16(gx.start, _mm256_sign_epi8(q, gx.x)), _mm256_set1_epi16(1));
#endif
}

}  // namespace

const char* Avx2Name() {
#if defined(LANLM_Q8_AVX2_VNNI)
  return "avx2-vnni";
#else
  return "avx2";
#endif
}

[[gnu::noipa]] void GemvBlockAvx2(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy) {
  const int64_t cols = w.cols, groups = cols / kQ8Group;
  const int64_t o0 = block * kGemvRows;
  const BlockRows rows = RowsOf(w, block);
  for (int64_t r = 0; r < x.n; ++r) {
    const int8_t* xq = x.xq + r * cols;
    const float* xs = x.xs + r * groups;
    __m256 acc[2][4] = {};  // [g % 2][row]
    auto group = [&](int64_t g, int half) {
      const GroupX gx = PrepareX(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + g * kQ8Group)));
      for (int j = 0; j < 4; ++j) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows.q[j] + g * kQ8Group));
        const __m256i p = GroupSums(gx, wv);
        acc[half][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(rows.scale[j][g] * xs[g]), acc[half][j]);
      }
    };
    int64_t g = 0;
    for (; g + 2 <= groups; g += 2) {
      group(g, 0);
      group(g + 1, 1);
    }
    if (g < groups) group(g, 0);
    // All four reduced, then the valid ones stored: indexing acc by the runtime count kept
    // the accumulators on the stack inside the group loop.
    float out[4];
    for (int j = 0; j < 4; ++j) out[j] = ReduceLanes(_mm256_add_ps(acc[0][j], acc[1][j]));
    StoreRows(out, rows.valid, y + r * ldy + o0);
  }
}

}  // namespace lanlm::engine::q8_internal

#endif  // LANLM_Q8_AVX2
