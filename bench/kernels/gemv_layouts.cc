// lanlm-gemv-layouts: the decoding GEMV on one 32000 x 288 matrix (INF15M's output projection),
// 1 thread, in the layout the engine uses (16-row input-major panels, engine/ops/gemv.h, the
// engine's own kernel) and in the row-major dot-product form it replaced (two 16-lane
// accumulators per output, a horizontal sum, tiles of 4 rows x 3 activation rows: a copy of the
// ninth session's kernel, kept here only to measure against). Medians of 15 timed runs after a
// warm-up, for 1, 8 and 32 activation rows. BENCHMARKS.md, issue 11, tenth session.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "engine/ops/gemv.h"
#include "engine/ops/simd.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace lanlm::engine {
namespace {

using simd::VecF;

constexpr int64_t kRows = 32000, kCols = 288;

// The old kernel's horizontal sum (register shuffles, pairwise halves).
inline float HalvingSum(VecF v) {
#if defined(__AVX512F__)
  __m256 lo, hi;
  std::memcpy(&lo, &v, sizeof(lo));
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(lo), sizeof(hi));
  const __m256 y = _mm256_add_ps(lo, hi);
  const __m128 x = _mm_add_ps(_mm256_castps256_ps128(y), _mm256_extractf128_ps(y, 1));
  const __m128 two = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps(two, two, 1)));
#else
  return simd::ReduceAdd(v);
#endif
}

// One output of the old form: a0 takes vectors 0, 2, 4, ..., a1 vectors 1, 3, 5, ...
// (kCols is a multiple of 2 x 16 lanes on AVX-512; other builds measure the same form).
template <int R, int S>
void OldTile(const float* w, const float* x, float* y, int64_t ldy) {
  VecF a[R][S][2] = {};
  for (int64_t i = 0; i + 2 * simd::kLanes <= kCols; i += 2 * simd::kLanes) {
    for (int j = 0; j < 2; ++j) {
      VecF wv[R];
      for (int r = 0; r < R; ++r) wv[r] = simd::LoadU(w + r * kCols + i + j * simd::kLanes);
      for (int s = 0; s < S; ++s) {
        const VecF xv = simd::LoadU(x + s * kCols + i + j * simd::kLanes);
        for (int r = 0; r < R; ++r) a[r][s][j] = simd::Fma(a[r][s][j], wv[r], xv);
      }
    }
  }
  for (int s = 0; s < S; ++s) {
    for (int r = 0; r < R; ++r) y[s * ldy + r] = HalvingSum(a[r][s][0] + a[r][s][1]);
  }
}

void OldForm(const float* w, const float* x, int64_t n, float* y) {
  for (int64_t o = 0; o < kRows; o += 4) {
    int64_t s = 0;
    for (; s + 3 <= n; s += 3) OldTile<4, 3>(w + o * kCols, x + s * kCols, y + s * kRows + o, kRows);
    for (; s < n; ++s) OldTile<4, 1>(w + o * kCols, x + s * kCols, y + s * kRows + o, kRows);
  }
}

template <typename Fn>
double MedianSeconds(Fn&& fn) {
  fn();
  std::vector<double> t;
  for (int r = 0; r < 15; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int Main() {
  std::vector<float> w(kRows * kCols), x(32 * kCols), y(32 * kRows);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i % 97) * 0.01f - 0.48f;
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 13) * 0.1f - 0.6f;
  AlignedVector<float> pf(PanelElements(kRows, kCols));
  AlignedVector<uint32_t> pb(Bf16PanelWords(kRows, kCols));
  AlignedVector<uint32_t> xp(32 * ((kCols + 1) / 2));
  PackBf16Activations(x.data(), 32, kCols, xp.data());
  PackPanels(w.data(), kRows, kCols, pf.data());
  PackPanels(w.data(), kRows, kCols, pb.data());
  const WeightMatrix f32{WeightFormat::kF32, kRows, kCols, pf.data()};
  const WeightMatrix bf16{WeightFormat::kBf16, kRows, kCols, nullptr, pb.data()};
  std::printf("32000 x 288, 1 thread, medians of 15 (ms; GFLOP/s)\n");
  for (int64_t n : {1, 8, 32}) {
    const GemvInput in{x.data(), nullptr, nullptr, n, xp.data()};
    const double flops = 2.0 * kRows * kCols * n;
    const double old_s = MedianSeconds([&] { OldForm(w.data(), x.data(), n, y.data()); });
    const double f32_s = MedianSeconds([&] { GemvBlocks(f32, in, 0, f32.blocks(), y.data(), kRows); });
    const double bf16_s = MedianSeconds([&] { GemvBlocks(bf16, in, 0, bf16.blocks(), y.data(), kRows); });
    std::printf("rows=%2lld  row-major fp32 %.3f (%.1f)  panels fp32 %.3f (%.1f)  panels bf16 %.3f (%.1f)\n",
                static_cast<long long>(n), old_s * 1e3, flops / old_s / 1e9, f32_s * 1e3, flops / f32_s / 1e9,
                bf16_s * 1e3, flops / bf16_s / 1e9);
  }
  return 0;
}

}  // namespace
}  // namespace lanlm::engine

int main() { return lanlm::engine::Main(); }
