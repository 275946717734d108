// The q8 GEMV block on AVX2 (compiled where the build's -march has it; otherwise GemvBlockQ8
// is the reference). Per group of 32: |x| (unsigned) times sign(x)·w (signed) with
// vpmaddubsw gives 16 pair sums (at most 2 * 127 * 127, no saturation), vpmaddwd with ones
// gives the eight partial sums of four products of gemv.h, converted exactly to fp32 and
// accumulated with one FMA per lane; the lanes are then summed pairwise as the reference does,
// so both agree bit for bit. Four weight rows share each activation group. Where the CPU has
// VNNI (vpdpbusd), one instruction gives the same eight sums of four products (exact: the
// products are at most 127 * 127). (Computing each block's scale(w) * scale(x) factors before
// the group loop measured 10 % slower at batch 1: 36 products per 36 group steps at C = 288.)
#include <algorithm>

#include "engine/ops/gemv.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace lanlm::engine {

#if defined(__AVX2__) && defined(__FMA__)

namespace {

// Lanes summed pairwise (l + 4, then + 2, then + 1) with register shuffles: the reference's
// order, without a store and scalar loop per output.
inline float ReduceLanes(__m256 v) {
  const __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 two = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps(two, two, 1)));
}

// The eight sums of four products |x| * (sign(x) w) of one group, exactly.
inline __m256i GroupSums(__m256i ax, __m256i sw) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sw);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), ax, sw);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sw), _mm256_set1_epi16(1));
#endif
}

}  // namespace

const char* Q8KernelName() {
#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(__AVXVNNI__)
  return "avx2-vnni";
#else
  return "avx2";
#endif
}

[[gnu::noipa]] void GemvBlockQ8(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy) {
  const int64_t cols = w.cols, groups = cols / kQ8Group;
  const int64_t o0 = block * kGemvRows;
  const int64_t valid = std::min<int64_t>(kGemvRows, w.rows - o0);
  const int8_t* wr[4];
  const float* sr[4];
  for (int64_t j = 0; j < 4; ++j) {
    const int64_t o = o0 + std::min<int64_t>(j, valid - 1);  // slots past the end repeat the last row
    wr[j] = w.q8 + o * cols;
    sr[j] = w.scale + o * groups;
  }
  for (int64_t r = 0; r < x.n; ++r) {
    const int8_t* xq = x.xq + r * cols;
    const float* xs = x.xs + r * groups;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t g = 0; g < groups; ++g) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + g * kQ8Group));
      const __m256i ax = _mm256_sign_epi8(xv, xv);
      for (int j = 0; j < 4; ++j) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[j] + g * kQ8Group));
        const __m256i p = GroupSums(ax, _mm256_sign_epi8(wv, xv));
        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(sr[j][g] * xs[g]), acc[j]);
      }
    }
    // All four reduced, then the valid ones stored: indexing acc by the runtime count kept
    // the accumulators on the stack inside the group loop.
    float out[4];
    for (int j = 0; j < 4; ++j) out[j] = ReduceLanes(acc[j]);
    for (int64_t j = 0; j < valid; ++j) y[r * ldy + o0 + j] = out[j];
  }
}

#else

const char* Q8KernelName() { return "generic"; }

void GemvBlockQ8(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy) {
  GemvBlockQ8Reference(w, x, block, y, ldy);
}

#endif

}  // namespace lanlm::engine
