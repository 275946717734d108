// The q8 GEMV block on AVX2 (compiled where the build's -march has it; otherwise GemvBlockQ8
// is the reference). Per group of 32: |x| (unsigned) times sign(x)·w (signed) with
// vpmaddubsw gives 16 pair sums (at most 2 * 127 * 127, no saturation), vpmaddwd with ones
// gives the eight partial sums of four products of gemv.h, converted exactly to fp32 and
// accumulated with one FMA per lane; the lanes are then summed pairwise as the reference does,
// so both agree bit for bit. Four weight rows share each activation group.
#include <algorithm>

#include "engine/ops/gemv.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace lanlm::engine {

#if defined(__AVX2__) && defined(__FMA__)

namespace {

inline float ReduceLanes(__m256 v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  for (int width = 4; width >= 1; width /= 2) {
    for (int l = 0; l < width; ++l) lanes[l] += lanes[l + width];
  }
  return lanes[0];
}

}  // namespace

const char* Q8KernelName() { return "avx2"; }

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
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t r = 0; r < x.n; ++r) {
    const int8_t* xq = x.xq + r * cols;
    const float* xs = x.xs + r * groups;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t g = 0; g < groups; ++g) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + g * kQ8Group));
      const __m256i ax = _mm256_sign_epi8(xv, xv);
      for (int j = 0; j < 4; ++j) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[j] + g * kQ8Group));
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(wv, xv)), ones);
        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(sr[j][g] * xs[g]), acc[j]);
      }
    }
    for (int64_t j = 0; j < valid; ++j) y[r * ldy + o0 + j] = ReduceLanes(acc[j]);
  }
}

#else

const char* Q8KernelName() { return "generic"; }

void GemvBlockQ8(const WeightMatrix& w, const GemvInput& x, int64_t block, float* y, int64_t ldy) {
  GemvBlockQ8Reference(w, x, block, y, ldy);
}

#endif

}  // namespace lanlm::engine
