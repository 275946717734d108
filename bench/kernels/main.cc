// lanlm-kernel-bench: GFLOP/s of MatmulForward / MatmulBackward (dx and dw separately) and
// of attention forward/backward at the config S and M training shapes, at each thread count,
// after the thread pool's cost per job.
// Medians over --reps timed runs after one warm-up. Not the training-step benchmark
// (that is lanlm-bench).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <immintrin.h>

#include "engine/cli/flags.h"
#include "engine/ops/attention.h"
#include "engine/ops/matmul.h"
#include "engine/base/thread_pool.h"

namespace lanlm::engine {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Medians of reps timed runs of fn after one warm-up: wall seconds, and process CPU seconds
// (the pool's workers sleep between jobs, so CPU time counts work, not waiting). On a shared,
// oversubscribed machine the wall time includes time the scheduler gave to others; CPU time
// per thread estimates the kernel's speed on a core it has to itself.
struct Timing {
  double wall;
  double cpu;
};

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

Timing Measure(int reps, const std::function<void()>& fn) {
  fn();
  std::vector<double> wall, cpu;
  for (int i = 0; i < reps; ++i) {
    const double c0 = CpuSeconds();
    const auto start = std::chrono::steady_clock::now();
    fn();
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    cpu.push_back(CpuSeconds() - c0);
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

void Report(const char* cfg, const std::string& what, int threads, double flops, Timing t) {
  std::printf("%-2s %-34s threads=%d  wall %9.3f ms %7.1f GFLOP/s | cpu %9.3f ms %7.1f GFLOP/s/core\n", cfg,
              what.c_str(), threads, t.wall * 1e3, flops / t.wall * 1e-9, t.cpu * 1e3,
              flops / t.cpu * 1e-9);
  std::fflush(stdout);
}

// One core's arithmetic peak, the figure kernel efficiencies are quoted against: 12 independent
// accumulator chains (more than latency x throughput needs) of one vector instruction on
// register operands, timed over about 0.3 s of this thread's CPU time (a busy machine's other
// processes take wall time, not this count). Returns GFLOP/s, or 0 where the CPU lacks it.
constexpr int kChains = 12;
constexpr int64_t kPeakIters = 20'000'000;

template <typename Fn>
double PeakGflops(double flops_per_iter, Fn loop) {
  loop(kPeakIters / 20);  // warm up (and let the clock settle)
  const double start = ThreadCpuSeconds();
  const float sink = loop(kPeakIters);
  const double s = ThreadCpuSeconds() - start;
  if (sink == 12345.0f) std::printf(" ");  // keep the result live
  return flops_per_iter * static_cast<double>(kPeakIters) / s * 1e-9;
}

// acc = acc * a + b: 2 flops per lane.
[[gnu::noipa]] __attribute__((target("avx512f"))) float Fma512(int64_t iters) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.5f);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  for (int j = 1; j < kChains; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  alignas(64) float out[16];
  _mm512_store_ps(out, acc[0]);  // not _mm512_reduce_add_ps: GCC 12 -O1 warns inside it
  return out[0] + out[15];
}

[[gnu::noipa]] __attribute__((target("avx2,fma"))) float Fma256(int64_t iters) {
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(static_cast<float>(j));
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.5f);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  for (int j = 1; j < kChains; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  float out[8];
  _mm256_storeu_ps(out, acc[0]);
  return out[0];
}

// VDPBF16PS: per lane two bf16 products added, 4 flops per lane. The operands hold small bf16
// values so the sums stay finite.
[[gnu::noipa]] __attribute__((target("avx512f,avx512bf16"))) float Dpbf16(int64_t iters) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_setzero_ps();
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3C003C00), b = (__m512bh)_mm512_set1_epi32(0x3C003C00);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  for (int j = 1; j < kChains; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  alignas(64) float out[16];
  _mm512_store_ps(out, acc[0]);  // not _mm512_reduce_add_ps: GCC 12 -O1 warns inside it
  return out[0] + out[15];
}

void BenchPeak() {
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const double fma = avx512 ? PeakGflops(kChains * 16 * 2, Fma512)
                            : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                                   ? PeakGflops(kChains * 8 * 2, Fma256)
                                   : 0.0);
  const double bf16 = avx512 && __builtin_cpu_supports("avx512bf16") ? PeakGflops(kChains * 16 * 4, Dpbf16) : 0.0;
  std::printf("peak, 1 core: fp32 FMA (%s) %.1f GFLOP/s; ", avx512 ? "512-bit" : "256-bit", fma);
  if (bf16 > 0) {
    std::printf("bf16 VDPBF16PS %.1f GFLOP/s\n", bf16);
  } else {
    std::printf("bf16 VDPBF16PS not available on this CPU\n");
  }
  std::fflush(stdout);
}

// The pool's own cost: one ParallelFor of one trivial item per chunk (every thread gets work,
// nothing to compute), the fixed cost each of the ~31 jobs of a decoded token pays.
void BenchPool(int threads, int reps) {
  ThreadPool pool(threads);
  constexpr int kJobs = 20000;
  std::atomic<int64_t> sink{0};
  const Timing t = Measure(reps, [&] {
    for (int j = 0; j < kJobs; ++j) {
      pool.ParallelFor(threads, int64_t{1} << 20, [&](int64_t b, int64_t e) { sink.fetch_add(e - b); });
    }
  });
  std::printf("pool empty ParallelFor of %d items              threads=%d  wall %9.3f us per job\n", threads, threads,
              t.wall / kJobs * 1e6);
}

struct Config {
  const char* name;
  int64_t V, C, NH, F, T, B;
};

void BenchConfig(const Config& c, int threads, int reps, Precision precision) {
  ThreadPool pool(threads);
  const int64_t R = c.B * c.T;
  struct Mm {
    const char* name;
    int64_t in, out;
  };
  for (const Mm& m : {Mm{"wq/wk/wv/wo", c.C, c.C}, Mm{"w1/w3", c.C, c.F}, Mm{"w2", c.F, c.C},
                      Mm{"output", c.C, c.V}}) {
    const auto x = Random(R * m.in, 1);
    const auto w = Random(m.out * m.in, 2);
    const auto dy = Random(R * m.out, 3);
    std::vector<float> y(R * m.out), dx(R * m.in, 0.0f), dw(m.out * m.in, 0.0f);
    const double flops = 2.0 * R * m.in * m.out;
    const std::string shape = " " + std::to_string(R) + "x" + std::to_string(m.in) + "->" + std::to_string(m.out);
    Report(c.name, std::string("fwd ") + m.name + shape, threads, flops,
           Measure(reps, [&] { MatmulForward(x.data(), w.data(), R, m.in, m.out, y.data(), pool, precision); }));
    Report(c.name, std::string("dx  ") + m.name + shape, threads, flops, Measure(reps, [&] {
             MatmulBackward(dy.data(), x.data(), w.data(), R, m.in, m.out, dx.data(), nullptr, pool, precision);
           }));
    Report(c.name, std::string("dw  ") + m.name + shape, threads, flops, Measure(reps, [&] {
             MatmulBackward(dy.data(), x.data(), w.data(), R, m.in, m.out, nullptr, dw.data(), pool, precision);
           }));
  }
  const int64_t D = c.C / c.NH;
  const int64_t n = R * c.C;
  const auto q = Random(n, 4), k = Random(n, 5), v = Random(n, 6), dout = Random(n, 7);
  std::vector<float> probs(c.B * c.NH * c.T * c.T), out(n), dq(n, 0.0f), dk(n, 0.0f), dv(n, 0.0f);
  // Useful flops of the causal attention: scores and p·v each ~ T²/2 · D FMAs per (b, h).
  const double fwd_flops = 2.0 * 2.0 * c.B * c.NH * (c.T * (c.T + 1) / 2.0) * D;
  const std::string shape = " B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) +
                            " NH=" + std::to_string(c.NH) + " D=" + std::to_string(D);
  Report(c.name, "attn fwd" + shape, threads, fwd_flops, Measure(reps, [&] {
           AttentionForward(q.data(), k.data(), v.data(), c.B, c.T, c.NH, D, probs.data(), out.data(), pool);
         }));
  Report(c.name, "attn bwd" + shape, threads, 2.0 * fwd_flops, Measure(reps, [&] {
           AttentionBackward(dout.data(), q.data(), k.data(), v.data(), probs.data(), c.B, c.T, c.NH, D, dq.data(),
                             dk.data(), dv.data(), pool);
         }));
}

}  // namespace
}  // namespace lanlm::engine

int main(int argc, char** argv) {
  int reps = 7;
  std::string threads_list = "1,2";
  std::string configs = "S,M";
  std::string precision_name = "fp32";
  bool peak = false;
  lanlm::FlagSet flags("lanlm-kernel-bench [flags]");
  flags.String("precision", &precision_name, "matmul precision: fp32 or bf16 (attention is fp32 in both)");
  flags.Bool("peak", &peak, "first print one core's fp32 FMA and bf16 VDPBF16PS peak");
  flags.Int("reps", &reps, "timed runs per kernel (median reported)", 1, 1000);
  flags.String("threads", &threads_list, "comma-separated thread counts");
  flags.String("configs", &configs, "comma-separated configs (S, M)");
  const lanlm::Status st = flags.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  lanlm::engine::Precision precision = lanlm::engine::Precision::kFp32;
  if (!lanlm::engine::ParsePrecision(precision_name, &precision) ||
      (precision == lanlm::engine::Precision::kBf16 && !lanlm::engine::Bf16Supported())) {
    std::fprintf(stderr, "--precision = '%s': fp32, or bf16 on a CPU with AVX512_BF16, AVX-512F or AVX2 + FMA\n",
                 precision_name.c_str());
    return 2;
  }
  if (peak) lanlm::engine::BenchPeak();
  if (precision == lanlm::engine::Precision::kBf16) std::printf("bf16 kernel: %s\n", lanlm::engine::Bf16KernelPath());
  using lanlm::engine::Config;
  const Config kS{"S", 1024, 128, 4, 352, 128, 8};
  const Config kM{"M", 4096, 288, 6, 768, 256, 8};
  std::vector<int> thread_counts;
  for (size_t pos = 0; pos < threads_list.size();) {
    const size_t comma = std::min(threads_list.find(',', pos), threads_list.size());
    const int t = std::atoi(threads_list.substr(pos, comma - pos).c_str());
    if (t <= 0) {
      std::fprintf(stderr, "--threads: '%s' is not a list of positive counts\n", threads_list.c_str());
      return 2;
    }
    thread_counts.push_back(t);
    pos = comma + 1;
  }
  for (int t : thread_counts) lanlm::engine::BenchPool(t, reps);
  for (const Config& c : {kS, kM}) {
    if (configs.find(c.name) == std::string::npos) continue;
    for (int t : thread_counts) lanlm::engine::BenchConfig(c, t, reps, precision);
  }
  return 0;
}
