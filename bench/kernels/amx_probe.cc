// lanlm-amx-probe: what Intel AMX's TDPBF16PS computes, and how fast, measured before deciding
// whether an AMX kernel can serve `--precision bf16` (whose contract, engine/ops/bf16.h, is per
// output element: for each pair p of reduction indices, acc += a[2p+1]·b[2p+1] then
// acc += a[2p]·b[2p], each an fp32 FMA rounded to nearest even, denormals flushed).
//
// Part 1 (bits): one TDPBF16PS on random tiles (C 16x16 fp32 += A 16x32 bf16 · B 32x16 bf16) is
// compared, element by element, with candidate models of its arithmetic:
//   hi_lo   the contract (VDPBF16PS's order): per pair, FMA of the odd index, then the even one
//   lo_hi   the same FMAs, even index first (the order of the ISA reference's pseudo-code)
//   pair    per pair, the two exact products summed and rounded, then added to acc and rounded
//   fused   acc plus all 32 products summed exactly (in double), rounded once
// over value classes that separate them (wide exponents, cancellation, bf16 denormals, Inf/NaN).
// Part 2 (speed and bits on a GEMM): y = x · Wᵀ at training shapes with a 2x2-tile AMX kernel
// (operands packed in pair words, as the engine packs them, and "swapped" with the two halves
// exchanged, which turns an even-first order into the contract's odd-first order), against the
// engine's bf16 GEMM (native VDPBF16PS and emulated) and fp32 GEMM on one thread: GFLOP/s and
// the number of outputs whose bits differ from the engine's.
//
// Runs only where the CPU has AMX-TILE and AMX-BF16 and Linux grants the tile state
// (arch_prctl ARCH_REQ_XCOMP_PERM); elsewhere it says so and exits 0. Not part of any test.
#include <cpuid.h>

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "engine/base/thread_pool.h"
#include "engine/ops/bf16.h"
#include "engine/ops/matmul.h"

namespace lanlm::engine {
namespace {

constexpr long kArchReqXcompPerm = 0x1023;
constexpr long kXfeatureXtiledata = 18;

bool CpuHasAmxBf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = (d >> 22) & 1u, amx_tile = (d >> 24) & 1u;
  return amx_bf16 && amx_tile;
}

bool RequestTileState() { return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0; }

// The tile intrinsics that are functions (not asm macros) need the target in any build.
__attribute__((target("amx-tile"))) void ReleaseTiles() { _tile_release(); }

inline void MemoryBarrier() { asm volatile("" ::: "memory"); }

// The 64-byte LDTILECFG operand (palette 1): per tile register, bytes per row and rows.
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Every tile 16 rows x 64 bytes: C (16x16 fp32), A (16 rows x 16 pair words), B (16 pair rows x
// 16 columns of pair words).
__attribute__((target("amx-tile"))) void ConfigureFullTiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  MemoryBarrier();  // the asm operand names only cfg's first 8 bytes: keep every store before it
  _tile_loadconfig(&cfg);
}

// c (16x16, row-major) += a (16 rows x 16 pair words) · b (16 pair rows x 16 pair words).
__attribute__((target("amx-tile,amx-bf16"))) void TileDot(const uint32_t* a, const uint32_t* b, float* c) {
  MemoryBarrier();
  _tile_loadd(0, c, 64);
  _tile_loadd(1, a, 64);
  _tile_loadd(2, b, 64);
  _tile_dpbf16ps(0, 1, 2);
  _tile_stored(0, c, 64);
  MemoryBarrier();
}

float Lo(uint32_t w) { return FloatFromBf16(static_cast<uint16_t>(w)); }
float Hi(uint32_t w) { return FloatFromBf16(static_cast<uint16_t>(w >> 16)); }

// FTZ/DAZ as the bf16 instructions apply them: denormal inputs count as zero (the bf16 inputs
// here are flushed explicitly), denormal results become zero of the same sign.
float Flush(float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; }
float FlushIn(float x) { return Flush(x); }
float Fma(float a, float b, float c) { return Flush(std::fma(FlushIn(a), FlushIn(b), Flush(c))); }

enum Model { kHiLo, kLoHi, kPair, kFused, kModels };
const char* const kModelNames[kModels] = {"hi_lo(contract)", "lo_hi", "pair", "fused"};

float Predict(Model m, float acc, const uint32_t* arow, const uint32_t* bcol_words, int pairs, int bstride) {
  if (m == kFused) {
    double s = Flush(acc);
    for (int p = 0; p < pairs; ++p) {
      const uint32_t aw = arow[p], bw = bcol_words[p * bstride];
      s += static_cast<double>(FlushIn(Lo(aw))) * FlushIn(Lo(bw));
      s += static_cast<double>(FlushIn(Hi(aw))) * FlushIn(Hi(bw));
    }
    return Flush(static_cast<float>(s));
  }
  for (int p = 0; p < pairs; ++p) {
    const uint32_t aw = arow[p], bw = bcol_words[p * bstride];
    if (m == kHiLo) {
      acc = Fma(Hi(aw), Hi(bw), acc);
      acc = Fma(Lo(aw), Lo(bw), acc);
    } else if (m == kLoHi) {
      acc = Fma(Lo(aw), Lo(bw), acc);
      acc = Fma(Hi(aw), Hi(bw), acc);
    } else {
      const float sum = Flush(FlushIn(Lo(aw)) * FlushIn(Lo(bw)) + FlushIn(Hi(aw)) * FlushIn(Hi(bw)));
      acc = Flush(acc + sum);
    }
  }
  return acc;
}

bool SameBits(float x, float y) {
  if (std::isnan(x) && std::isnan(y)) return true;
  uint32_t a, b;
  std::memcpy(&a, &x, 4);
  std::memcpy(&b, &y, 4);
  return a == b;
}

// A bf16 value of the class: 0 wide exponents, 1 cancellation-prone (near 1, mixed signs),
// 2 with bf16 denormals, 3 with Inf/NaN sprinkled in.
uint16_t RandomBf16(std::mt19937& rng, int cls) {
  std::uniform_int_distribution<int> mant(0, 127), sign(0, 1), pct(0, 99);
  int exp = 127;
  if (cls == 0) exp = std::uniform_int_distribution<int>(127 - 20, 127 + 20)(rng);
  if (cls == 1) exp = std::uniform_int_distribution<int>(125, 128)(rng);
  if (cls == 2) exp = pct(rng) < 25 ? 0 : std::uniform_int_distribution<int>(1, 40)(rng);
  if (cls == 3) {
    const int r = pct(rng);
    exp = r < 3 ? 255 : std::uniform_int_distribution<int>(100, 150)(rng);
  }
  return static_cast<uint16_t>((sign(rng) << 15) | (exp << 7) | mant(rng));
}

float RandomAcc(std::mt19937& rng, int cls) {
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  if (cls == 2) return std::ldexp(u(rng), -120);
  return cls == 0 ? std::ldexp(u(rng), std::uniform_int_distribution<int>(-10, 30)(rng)) : u(rng);
}

void ProbeBits() {
  const char* const class_names[4] = {"wide-exponents", "cancellation", "denormals", "inf-nan"};
  std::printf("part 1: one TDPBF16PS (16 pairs) vs models; share of outputs with identical bits\n");
  for (int pairs_used : {1, 16}) {
    for (int cls = 0; cls < 4; ++cls) {
      std::mt19937 rng(1234 + cls);
      long total = 0, match[kModels] = {};
      alignas(64) uint32_t a[256], b[256];
      alignas(64) float c[256], init[256];
      for (int trial = 0; trial < 200; ++trial) {
        for (int i = 0; i < 256; ++i) {
          const int p = i % 16;  // a: [row][pair]; b: [pair][col]
          const bool live_a = p < pairs_used, live_b = (i / 16) < pairs_used;
          a[i] = live_a ? (RandomBf16(rng, cls) | (static_cast<uint32_t>(RandomBf16(rng, cls)) << 16)) : 0;
          b[i] = live_b ? (RandomBf16(rng, cls) | (static_cast<uint32_t>(RandomBf16(rng, cls)) << 16)) : 0;
          c[i] = init[i] = RandomAcc(rng, cls);
        }
        TileDot(a, b, c);
        for (int m = 0; m < 16; ++m) {
          for (int n = 0; n < 16; ++n) {
            ++total;
            for (int model = 0; model < kModels; ++model) {
              const float want =
                  Predict(static_cast<Model>(model), init[m * 16 + n], a + m * 16, b + n, pairs_used, 16);
              match[model] += SameBits(want, c[m * 16 + n]);
            }
          }
        }
      }
      std::printf("  pairs=%-2d %-15s", pairs_used, class_names[cls]);
      for (int model = 0; model < kModels; ++model) {
        std::printf(" %s=%.4f", kModelNames[model], static_cast<double>(match[model]) / static_cast<double>(total));
      }
      std::printf("\n");
    }
  }
}

// Pair words of x (rows x K, row-major) along K: out[r * k2 + p] (the A tile layout). swap puts
// index 2p in the high half.
std::vector<uint32_t> PackRows(const std::vector<float>& x, int64_t rows, int64_t K, bool swap) {
  const int64_t k2 = K / 2;
  std::vector<uint32_t> out(static_cast<size_t>(rows * k2));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t p = 0; p < k2; ++p) {
      const float e = x[r * K + 2 * p], o = x[r * K + 2 * p + 1];
      out[r * k2 + p] = swap ? Bf16Pair(o, e) : Bf16Pair(e, o);
    }
  }
  return out;
}

// W (O x K) as B = Wᵀ panels of 32 columns: out[(panel * k2 + p) * 32 + col].
std::vector<uint32_t> PackPanels(const std::vector<float>& w, int64_t O, int64_t K, bool swap) {
  const int64_t k2 = K / 2;
  std::vector<uint32_t> out(static_cast<size_t>(O / 32 * k2 * 32));
  for (int64_t j = 0; j < O / 32; ++j) {
    for (int64_t p = 0; p < k2; ++p) {
      for (int col = 0; col < 32; ++col) {
        const float* wr = w.data() + (j * 32 + col) * K;
        out[(j * k2 + p) * 32 + col] = swap ? Bf16Pair(wr[2 * p + 1], wr[2 * p]) : Bf16Pair(wr[2 * p], wr[2 * p + 1]);
      }
    }
  }
  return out;
}

// y (R x O) = A · B with 32x32 blocks of four C tiles; R, O multiples of 32, K of 32.
__attribute__((target("amx-tile,amx-bf16"))) void AmxGemm(const uint32_t* ap, const uint32_t* bp, int64_t R, int64_t O,
                                                          int64_t K, float* y) {
  const int64_t k2 = K / 2;
  MemoryBarrier();  // the tile loads are asm that names no memory: the packed operands first
  for (int64_t r0 = 0; r0 < R; r0 += 32) {
    for (int64_t j = 0; j < O / 32; ++j) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      const uint32_t* panel = bp + j * k2 * 32;
      for (int64_t p0 = 0; p0 < k2; p0 += 16) {
        _tile_loadd(4, ap + r0 * k2 + p0, k2 * 4);
        _tile_loadd(5, ap + (r0 + 16) * k2 + p0, k2 * 4);
        _tile_loadd(6, panel + p0 * 32, 128);
        _tile_loadd(7, panel + p0 * 32 + 16, 128);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      float* c = y + r0 * O + j * 32;
      _tile_stored(0, c, O * 4);
      _tile_stored(1, c + 16, O * 4);
      _tile_stored(2, c + 16 * O, O * 4);
      _tile_stored(3, c + 16 * O + 16, O * 4);
    }
  }
  MemoryBarrier();
}

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

template <typename Fn>
double MedianSeconds(int reps, Fn fn) {
  fn();
  std::vector<double> s;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    s.push_back(Seconds(t0, std::chrono::steady_clock::now()));
  }
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

long DiffCount(const std::vector<float>& x, const std::vector<float>& y) {
  long n = 0;
  for (size_t i = 0; i < x.size(); ++i) n += !SameBits(x[i], y[i]);
  return n;
}

void ProbeGemm(int64_t R, int64_t O, int64_t K) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(R * K)), w(static_cast<size_t>(O * K));
  for (float& v : x) v = nd(rng);
  for (float& v : w) v = 0.05f * nd(rng);
  ThreadPool pool(1);
  const double flops = 2.0 * static_cast<double>(R) * static_cast<double>(O) * static_cast<double>(K);
  std::vector<float> y_native(x.size() / K * O), y_emu(y_native.size()), y_fp32(y_native.size());
  std::vector<float> y_amx(y_native.size()), y_amx_swap(y_native.size());
  const bool has_native = SelectBf16Kernel("native");
  const double t_native = has_native ? MedianSeconds(9, [&] {
    MatmulForward(x.data(), w.data(), R, K, O, y_native.data(), pool, Precision::kBf16);
  })
                                     : 0.0;
  SelectBf16Kernel("emulated");
  const double t_emu =
      MedianSeconds(5, [&] { MatmulForward(x.data(), w.data(), R, K, O, y_emu.data(), pool, Precision::kBf16); });
  SelectBf16Kernel("auto");
  const double t_fp32 =
      MedianSeconds(5, [&] { MatmulForward(x.data(), w.data(), R, K, O, y_fp32.data(), pool, Precision::kFp32); });
  const auto ap = PackRows(x, R, K, false), bp = PackPanels(w, O, K, false);
  const auto ap_s = PackRows(x, R, K, true), bp_s = PackPanels(w, O, K, true);
  const double t_amx = MedianSeconds(9, [&] { AmxGemm(ap.data(), bp.data(), R, O, K, y_amx.data()); });
  AmxGemm(ap_s.data(), bp_s.data(), R, O, K, y_amx_swap.data());
  const double t_pack = MedianSeconds(5, [&] {
    const auto a2 = PackRows(x, R, K, false);
    MemoryBarrier();
    (void)a2;
  });
  std::printf("part 2: y = x·Wᵀ  R=%lld O=%lld K=%lld, 1 thread, GFLOP/s (median)\n", static_cast<long long>(R),
              static_cast<long long>(O), static_cast<long long>(K));
  std::printf("  fp32 gemm          %8.1f\n", flops / t_fp32 / 1e9);
  std::printf("  bf16 emulated      %8.1f\n", flops / t_emu / 1e9);
  if (has_native) std::printf("  bf16 avx512bf16    %8.1f  differs from emulated: %ld of %zu\n", flops / t_native / 1e9,
                              DiffCount(y_native, y_emu), y_emu.size());
  std::printf("  amx (pre-packed)   %8.1f  (+ scalar A packing %.1f ms, not optimised)\n", flops / t_amx / 1e9,
              t_pack * 1e3);
  std::printf("  amx vs contract: outputs with other bits: plain packing %ld, swapped packing %ld of %zu\n",
              DiffCount(y_amx, y_emu), DiffCount(y_amx_swap, y_emu), y_emu.size());
  double max_rel = 0.0;
  for (size_t i = 0; i < y_emu.size(); ++i) {
    max_rel = std::max(max_rel, std::fabs(static_cast<double>(y_amx[i]) - y_emu[i]) / (std::fabs(y_emu[i]) + 1e-6));
  }
  std::printf("  amx vs contract: max relative difference %.3g\n", max_rel);
}

int Main() {
  if (!CpuHasAmxBf16()) {
    std::printf("lanlm-amx-probe: this CPU has no AMX-TILE/AMX-BF16 (cpuid leaf 7); nothing to measure\n");
    return 0;
  }
  if (!RequestTileState()) {
    std::printf("lanlm-amx-probe: Linux refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM): %s\n",
                std::strerror(errno));
    return 0;
  }
  const unsigned saved = _mm_getcsr();
  _mm_setcsr(saved | 0x8040u);  // FTZ|DAZ for the scalar models
  ConfigureFullTiles();
  ProbeBits();
  _mm_setcsr(saved);
  ProbeGemm(2048, 768, 288);   // config M: x (B*T, C) · W1ᵀ
  ProbeGemm(2048, 288, 768);   // config M: x (B*T, F) · W2ᵀ
  ProbeGemm(512, 1024, 1024);  // square-ish, weights in L2
  ReleaseTiles();
  return 0;
}

}  // namespace
}  // namespace lanlm::engine

int main() { return lanlm::engine::Main(); }
