// lanlm-cache-halves: whether each core keeps its own part of a buffer read over and over, the
// property that decides how batch-1 decoding should split its weights over threads (issue 11,
// thirteenth session; ThreadPool::ParallelForAffine). For buffers of 8-96 MB it reads the whole
// buffer again and again and prints GB/s:
//   1 thread          the whole buffer;
//   2, halves fixed   thread t reads half t on every pass (what ParallelForAffine gives);
//   2, halves swap    the two threads exchange halves after every pass (what first-come claims
//                     can give: a range goes to whichever thread is free).
// Where "fixed" beats "swap", each core's caches hold a part that the other core's do not (on
// the development VM: 143 against 98 GB/s at 30 MB, the size of INF15M's bf16 weights).
// Portable vector code (simd.h): four accumulators, 64 floats per step. Not part of any test.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "engine/ops/gemv.h"
#include "engine/ops/simd.h"

namespace {

using lanlm::engine::simd::kLanes;
using lanlm::engine::simd::VecF;

float Sum(const float* p, size_t n) {  // n: a multiple of 4 * kLanes
  VecF a0{}, a1{}, a2{}, a3{};
  for (size_t i = 0; i < n; i += 4 * kLanes) {
    a0 += lanlm::engine::simd::LoadU(p + i);
    a1 += lanlm::engine::simd::LoadU(p + i + kLanes);
    a2 += lanlm::engine::simd::LoadU(p + i + 2 * kLanes);
    a3 += lanlm::engine::simd::LoadU(p + i + 3 * kLanes);
  }
  return lanlm::engine::simd::ReduceAdd(a0 + a1 + a2 + a3);
}

// GB/s of `passes` passes over buf by `threads` threads, each pass split in halves (swapped
// between passes when `swap`); the threads meet after every pass.
double Measure(const std::vector<float, lanlm::engine::AlignedAllocator<float>>& buf, int threads, bool swap,
               int passes) {
  const size_t n = buf.size();
  std::atomic<int> arrived{0};
  std::atomic<float> sink{0.0f};
  auto work = [&](int t) {
    float local = 0.0f;
    for (int r = 0; r < passes; ++r) {
      const size_t part = swap ? static_cast<size_t>((t + r) % threads) : static_cast<size_t>(t);
      local += Sum(buf.data() + n / threads * part, n / threads);
      arrived.fetch_add(1);
      while (arrived.load() < (r + 1) * threads) {
      }
    }
    sink.store(sink.load() + local);
  };
  const auto start = std::chrono::steady_clock::now();
  if (threads == 1) {
    work(0);
  } else {
    std::thread other(work, 1);
    work(0);
    other.join();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(n) * sizeof(float) * passes / s / 1e9;
}

}  // namespace

int main() {
  std::printf("MB  1 thread  2 halves fixed  2 halves swap  (GB/s)\n");
  for (double mb : {8.0, 16.0, 24.0, 30.0, 40.0, 48.0, 61.0, 96.0}) {
    const size_t step = 8 * kLanes;  // both halves a multiple of 4 * kLanes
    std::vector<float, lanlm::engine::AlignedAllocator<float>> buf(static_cast<size_t>(mb * 1e6 / 4) / step * step,
                                                                   1.0f);
    const int passes = static_cast<int>(2000 / mb) + 3;
    Measure(buf, 1, false, 2);  // warm-up: pages in, caches filled
    const double one = Measure(buf, 1, false, passes);
    const double fixed = Measure(buf, 2, false, passes);
    const double swapped = Measure(buf, 2, true, passes);
    std::printf("%3.0f  %8.1f  %14.1f  %13.1f\n", mb, one, fixed, swapped);
  }
  return 0;
}
