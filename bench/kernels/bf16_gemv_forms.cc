// lanlm-bf16-gemv-forms: batch-1 bf16 decoding GEMV, the engine's kernel on pair panels
// (activations rounded to bf16, one VDPBF16PS per pair and panel, or its emulation) against a
// copy of the kernel it replaced (bf16 panels of 16 rows widened to fp32 with vpmovzxwd + a
// shift, then fp32 FMAs on the fp32 activations, the next group prefetched; AVX-512 only). GB/s
// of bf16 weights read, medians of 9 timings of 40 passes, on 1 thread and on 2 threads that
// each read the same half at every pass (as decoding's affine ranges do). Rows: 32000 (INF15M's
// classifier, 18 MB; 1 and 2 threads) and 1024 (0.6 MB, in L2; 1 thread). BENCHMARKS.md, issue 11, fourteenth session.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "engine/ops/bf16.h"
#include "engine/ops/gemv.h"
#include "engine/ops/matmul.h"

namespace lanlm::engine {
namespace {

constexpr int64_t kCols = 288;

// GCC 12's _mm512_slli_epi32 passes _mm512_undefined_epi32() as the (fully masked-off) merge
// source, which -Wmaybe-uninitialized reports from inside the intrinsic header at -O1 (as in
// engine/ops/gemm_bf16.cc).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// The replaced kernel: panels of 16 rows of bf16, input-major (w[o, i] at ((o / 16) * cols + i)
// * 16 + o % 16), 4 panels in flight, the next group's memory prefetched linearly.
__attribute__((target("avx512f"))) void Widening(const uint16_t* w, int64_t panels, const float* x, float* y) {
  for (int64_t g = 0; g + 4 <= panels; g += 4) {
    const uint16_t* wg = w + g * 16 * kCols;
    const char* ahead = reinterpret_cast<const char*>(wg + 4 * 16 * kCols);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t i = 0; i < kCols; ++i) {
      if (g + 8 <= panels) {
        for (int b = 0; b < 128; b += 64) __builtin_prefetch(ahead + i * 128 + b);
      }
      const __m512 xb = _mm512_set1_ps(x[i]);
      for (int p = 0; p < 4; ++p) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + (p * kCols + i) * 16));
        const __m512i u = _mm512_slli_epi32(_mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16);
        acc[p] = _mm512_fmadd_ps(_mm512_castsi512_ps(u), xb, acc[p]);
      }
    }
    for (int p = 0; p < 4; ++p) _mm512_storeu_ps(y + (g + p) * 16, acc[p]);
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Median GB/s of `body(t, threads)` run 40 times by each of `threads` threads (meeting after
// every pass), for `bytes` of weights a pass.
template <typename Fn>
double GBps(int threads, double bytes, Fn&& body) {
  std::vector<double> rates;
  for (int rep = 0; rep < 10; ++rep) {
    std::atomic<int> arrived{0};
    auto run = [&](int t) {
      for (int pass = 0; pass < 40; ++pass) {
        body(t, threads);
        arrived.fetch_add(1);
        while (arrived.load() < (pass + 1) * threads) {
        }
      }
    };
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> others;
    for (int t = 1; t < threads; ++t) others.emplace_back(run, t);
    run(0);
    for (std::thread& o : others) o.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep > 0) rates.push_back(40 * bytes / s / 1e9);  // the first is a warm-up
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

void Measure(int64_t rows, int max_threads) {
  const int64_t panels = rows / 16;
  std::vector<float> w(rows * kCols), x(kCols), y(rows);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i % 97) * 0.01f - 0.48f;
  for (int64_t i = 0; i < kCols; ++i) x[i] = static_cast<float>(i % 13) * 0.1f - 0.6f;
  AlignedVector<uint32_t> pairs(Bf16PanelWords(rows, kCols)), xp(kCols / 2);
  PackPanels(w.data(), rows, kCols, pairs.data());
  PackBf16Activations(x.data(), 1, kCols, xp.data());
  AlignedVector<uint16_t> widen(rows * kCols);
  for (int64_t o = 0; o < rows; ++o) {
    for (int64_t i = 0; i < kCols; ++i) widen[((o / 16) * kCols + i) * 16 + o % 16] = Bf16FromFloat(w[o * kCols + i]);
  }
  const WeightMatrix m{WeightFormat::kBf16, rows, kCols, nullptr, pairs.data()};
  const GemvInput in{x.data(), nullptr, nullptr, 1, xp.data()};
  const double bytes = 2.0 * rows * kCols;
  // Thread t of n: panels [first, last), whole groups of 4.
  auto part = [&](int t, int n, int64_t& first, int64_t& last) {
    first = panels * t / n / 4 * 4;
    last = t + 1 == n ? panels : panels * (t + 1) / n / 4 * 4;
  };
  for (int threads = 1; threads <= max_threads; ++threads) {
    std::printf("rows=%5lld threads=%d", static_cast<long long>(rows), threads);
    if (__builtin_cpu_supports("avx512f")) {
      std::printf("  widening %.1f", GBps(threads, bytes, [&](int t, int n) {
                    int64_t a, b;
                    part(t, n, a, b);
                    Widening(widen.data() + a * 16 * kCols, b - a, x.data(), y.data() + a * 16);
                  }));
    }
    for (const char* kernel : {"native", "emulated"}) {
      if (!SelectBf16Kernel(kernel)) continue;
      std::printf("  pairs-%s %.1f", kernel, GBps(threads, bytes, [&](int t, int n) {
                    int64_t a, b;
                    part(t, n, a, b);
                    GemvBlocks(m, in, a, b, y.data(), rows);
                  }));
    }
    SelectBf16Kernel("auto");
    std::printf("  (GB/s of bf16 weights)\n");
  }
}

}  // namespace
}  // namespace lanlm::engine

int main() {
  lanlm::engine::Measure(32000, 2);
  lanlm::engine::Measure(1024, 1);  // a pass of a few us: 2 threads would time the barrier
  return 0;
}
