// The bf16 GEMM: pair packing, three micro-kernels chosen at run time, and the driver; see
// gemm_bf16.h. The kernels carry their own target attributes, so they exist in every build
// (-march=native or the portable one) and the CPU decides which runs.
#include "engine/ops/gemm_bf16.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "engine/base/check.h"
#include "engine/ops/bf16.h"
#include "engine/ops/bf16_pack.h"

namespace lanlm::engine::gemm_bf16 {
namespace {

using gemm::Operand;

// A micro-kernel: c (m_valid x n_valid of an mr x nr tile, stride ldc) (=|+=) the sum over k2
// pairs of ap (k2 x mr pair words) and bp (k2 x nr pair words).
using KernelFn = void (*)(const uint32_t* ap, const uint32_t* bp, int64_t k2, float* c, int64_t ldc, int m_valid,
                          int n_valid, bool accumulate);

// The (m_valid x n_valid) corner of a row-major tile (nr floats per row) stored into or added to c.
void StoreTile(const float* tile, int nr, float* c, int64_t ldc, int m_valid, int n_valid, bool accumulate) {
  for (int m = 0; m < m_valid; ++m) {
    float* cm = c + m * ldc;
    const float* tm = tile + m * nr;
    for (int n = 0; n < n_valid; ++n) cm[n] = accumulate ? cm[n] + tm[n] : tm[n];
  }
}

// 12 x 32 tiles with 512-bit vectors: 24 accumulators + 2 B + 1 A of 32 zmm registers.
constexpr int kMr512 = 12;
constexpr int kNr512 = 32;
// 6 x 16 with 256-bit vectors: 12 accumulators + 2 B + 1 A of 16 ymm registers.
constexpr int kMr256 = 6;
constexpr int kNr256 = 16;

#define LANLM_BF16_NATIVE __attribute__((target("avx512f,avx512bf16")))
#define LANLM_BF16_EMU512 __attribute__((target("avx512f")))
#define LANLM_BF16_EMU256 __attribute__((target("avx2,fma")))

// VDPBF16PS: per lane acc += a.hi·b.hi, then acc += a.lo·b.lo (hi = index 2p + 1, lo = 2p).
[[gnu::noipa]] LANLM_BF16_NATIVE void KernelNative(const uint32_t* ap, const uint32_t* bp, int64_t k2, float* c,
                                                   int64_t ldc, int m_valid, int n_valid, bool accumulate) {
  __m512 acc[kMr512][2];
  for (int m = 0; m < kMr512; ++m) acc[m][0] = acc[m][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k2; ++p, ap += kMr512, bp += kNr512) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + 16);
    for (int m = 0; m < kMr512; ++m) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[m]));
      acc[m][0] = _mm512_dpbf16_ps(acc[m][0], a, b0);
      acc[m][1] = _mm512_dpbf16_ps(acc[m][1], a, b1);
    }
  }
  alignas(64) float tile[kMr512 * kNr512];
  for (int m = 0; m < kMr512; ++m) {
    _mm512_store_ps(tile + m * kNr512, acc[m][0]);
    _mm512_store_ps(tile + m * kNr512 + 16, acc[m][1]);
  }
  StoreTile(tile, kNr512, c, ldc, m_valid, n_valid, accumulate);
}

// GCC 12's _mm512_slli_epi32 passes _mm512_undefined_epi32() as the (fully masked-off) merge
// source, which -Wmaybe-uninitialized reports from inside the intrinsic header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// The same sums as KernelNative with AVX-512F FMAs: a pair word's high half is its bits with
// the low 16 cleared, its low half the word shifted left by 16.
[[gnu::noipa]] LANLM_BF16_EMU512 void KernelEmulated512(const uint32_t* ap, const uint32_t* bp, int64_t k2, float* c,
                                                        int64_t ldc, int m_valid, int n_valid, bool accumulate) {
  const __m512i high_mask = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  __m512 acc[kMr512][2];
  for (int m = 0; m < kMr512; ++m) acc[m][0] = acc[m][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k2; ++p, ap += kMr512, bp += kNr512) {
    const __m512i w0 = _mm512_loadu_si512(bp);
    const __m512i w1 = _mm512_loadu_si512(bp + 16);
    const __m512 hi0 = _mm512_castsi512_ps(_mm512_and_si512(w0, high_mask));
    const __m512 hi1 = _mm512_castsi512_ps(_mm512_and_si512(w1, high_mask));
    for (int m = 0; m < kMr512; ++m) {
      const __m512 a = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(ap[m] & 0xFFFF0000u)));
      acc[m][0] = _mm512_fmadd_ps(a, hi0, acc[m][0]);
      acc[m][1] = _mm512_fmadd_ps(a, hi1, acc[m][1]);
    }
    const __m512 lo0 = _mm512_castsi512_ps(_mm512_slli_epi32(w0, 16));
    const __m512 lo1 = _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16));
    for (int m = 0; m < kMr512; ++m) {
      const __m512 a = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(ap[m] << 16)));
      acc[m][0] = _mm512_fmadd_ps(a, lo0, acc[m][0]);
      acc[m][1] = _mm512_fmadd_ps(a, lo1, acc[m][1]);
    }
  }
  alignas(64) float tile[kMr512 * kNr512];
  for (int m = 0; m < kMr512; ++m) {
    _mm512_store_ps(tile + m * kNr512, acc[m][0]);
    _mm512_store_ps(tile + m * kNr512 + 16, acc[m][1]);
  }
  StoreTile(tile, kNr512, c, ldc, m_valid, n_valid, accumulate);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// The same with AVX2 + FMA on 6 x 16 tiles.
[[gnu::noipa]] LANLM_BF16_EMU256 void KernelEmulated256(const uint32_t* ap, const uint32_t* bp, int64_t k2, float* c,
                                                        int64_t ldc, int m_valid, int n_valid, bool accumulate) {
  const __m256i high_mask = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
  __m256 acc[kMr256][2];
  for (int m = 0; m < kMr256; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
  for (int64_t p = 0; p < k2; ++p, ap += kMr256, bp += kNr256) {
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + 8));
    const __m256 hi0 = _mm256_castsi256_ps(_mm256_and_si256(w0, high_mask));
    const __m256 hi1 = _mm256_castsi256_ps(_mm256_and_si256(w1, high_mask));
    for (int m = 0; m < kMr256; ++m) {
      const __m256 a = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(ap[m] & 0xFFFF0000u)));
      acc[m][0] = _mm256_fmadd_ps(a, hi0, acc[m][0]);
      acc[m][1] = _mm256_fmadd_ps(a, hi1, acc[m][1]);
    }
    const __m256 lo0 = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
    const __m256 lo1 = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
    for (int m = 0; m < kMr256; ++m) {
      const __m256 a = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(ap[m] << 16)));
      acc[m][0] = _mm256_fmadd_ps(a, lo0, acc[m][0]);
      acc[m][1] = _mm256_fmadd_ps(a, lo1, acc[m][1]);
    }
  }
  alignas(32) float tile[kMr256 * kNr256];
  for (int m = 0; m < kMr256; ++m) {
    _mm256_store_ps(tile + m * kNr256, acc[m][0]);
    _mm256_store_ps(tile + m * kNr256 + 8, acc[m][1]);
  }
  StoreTile(tile, kNr256, c, ldc, m_valid, n_valid, accumulate);
}

struct KernelSpec {
  KernelFn fn;
  int mr, nr;
};

bool HasAvx512() { return __builtin_cpu_supports("avx512f"); }
bool HasAvx2Fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

KernelSpec Spec(Kernel k) {
  if (k == Kernel::kNative) return {KernelNative, kMr512, kNr512};
  if (k == Kernel::kEmulated && HasAvx512()) return {KernelEmulated512, kMr512, kNr512};
  return {KernelEmulated256, kMr256, kNr256};
}

std::atomic<int> g_forced{-1};  // -1: automatic; else a Kernel

uint32_t* Grow(std::vector<uint32_t>& buf, int64_t n) {
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

// Panel j (columns [j * nr, j * nr + nr)) of B (K x N) as pair words dst [k2][nr], zero past N
// and past K.
void PackBPanel(Operand b, int64_t K, int64_t N, int nr, int64_t j, uint32_t* d) {
  const int64_t n0 = j * nr;
  const int cols = static_cast<int>(std::min<int64_t>(nr, N - n0));
  PackPairs({b.p + n0 * b.s_col, b.s_col, b.s_row, cols}, K, nr, d);
}

// The strip of mr rows of A (M x K) from row m0 as pair words dst [k2][mr], zero past M and K.
void PackAStrip(Operand a, int64_t M, int64_t K, int mr, int64_t m0, uint32_t* d) {
  const int rows = static_cast<int>(std::min<int64_t>(mr, M - m0));
  PackPairs({a.p + m0 * a.s_row, a.s_row, a.s_col, rows}, K, mr, d);
}

}  // namespace

bool NativeAvailable() {
  static const bool has = HasAvx512() && __builtin_cpu_supports("avx512bf16");
  return has;
}

bool Supported() {
  static const bool has = NativeAvailable() || HasAvx512() || HasAvx2Fma();
  return has;
}

Kernel ActiveKernel() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Kernel>(forced);
  return NativeAvailable() ? Kernel::kNative : Kernel::kEmulated;
}

bool KernelAvailable(Kernel k) {
  if (k == Kernel::kNative) return NativeAvailable();
  if (k == Kernel::kEmulatedAvx2) return HasAvx2Fma();
  return Supported();
}

bool ForceKernel(Kernel k) {
  if (!KernelAvailable(k)) return false;
  g_forced.store(static_cast<int>(k), std::memory_order_relaxed);
  return true;
}

void UnforceKernel() { g_forced.store(-1, std::memory_order_relaxed); }

const char* KernelName(Kernel k) {
  if (k == Kernel::kNative) return "avx512bf16";
  if (k == Kernel::kEmulated && HasAvx512()) return "emulated-avx512f";
  return HasAvx2Fma() ? "emulated-avx2-fma" : "unsupported";
}

namespace {

// C (=|+=) A · B with B already packed in bp (panels of s.nr): parallel over groups of row
// blocks as in the fp32 Gemm (matmul.cc); the group only balances work.
void Multiply(const KernelSpec& s, Operand a, const uint32_t* bp, int64_t M, int64_t N, int64_t K, float* c,
              int64_t ldc, bool accumulate, ThreadPool& pool) {
  const int64_t k2 = (K + 1) / 2;
  const int64_t panels = (N + s.nr - 1) / s.nr;
  const int64_t row_blocks = (M + s.mr - 1) / s.mr;
  const int64_t group = std::clamp<int64_t>(row_blocks / (4 * int64_t{pool.size()}), 1, 8);
  const int64_t groups = (row_blocks + group - 1) / group;
  pool.ParallelFor(groups, 2 * group * s.mr * panels * s.nr * K, [&](int64_t begin, int64_t end) {
    const FlushDenormals flush;
    thread_local std::vector<uint32_t> a_buf;
    uint32_t* ap = Grow(a_buf, group * k2 * s.mr);
    for (int64_t g = begin; g < end; ++g) {
      const int64_t rb0 = g * group;
      const int64_t nb = std::min(group, row_blocks - rb0);
      for (int64_t blk = 0; blk < nb; ++blk) PackAStrip(a, M, K, s.mr, (rb0 + blk) * s.mr, ap + blk * k2 * s.mr);
      for (int64_t j = 0; j < panels; ++j) {
        const int n_valid = static_cast<int>(std::min<int64_t>(s.nr, N - j * s.nr));
        for (int64_t blk = 0; blk < nb; ++blk) {
          const int64_t m0 = (rb0 + blk) * s.mr;
          const int m_valid = static_cast<int>(std::min<int64_t>(s.mr, M - m0));
          s.fn(ap + blk * k2 * s.mr, bp + j * k2 * s.nr, k2, c + m0 * ldc + j * s.nr, ldc, m_valid, n_valid,
               accumulate);
        }
      }
    }
  });
}

// All panels of B into bp (panels x k2 x nr words), parallel over panels.
void PackPanels(Operand b, int64_t K, int64_t N, int nr, uint32_t* bp, ThreadPool& pool) {
  const int64_t k2 = (K + 1) / 2;
  const int64_t panels = (N + nr - 1) / nr;
  pool.ParallelFor(panels, 4 * K * nr, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) PackBPanel(b, K, N, nr, j, bp + j * k2 * nr);
  });
}

}  // namespace

void Gemm(Operand a, Operand b, int64_t M, int64_t N, int64_t K, float* c, int64_t ldc, bool accumulate,
          ThreadPool& pool) {
  if (M <= 0 || N <= 0) return;
  const KernelSpec s = Spec(ActiveKernel());
  thread_local std::vector<uint32_t> b_buf;
  uint32_t* bp = Grow(b_buf, (N + s.nr - 1) / s.nr * ((K + 1) / 2) * s.nr);
  PackPanels(b, K, N, s.nr, bp, pool);
  Multiply(s, a, bp, M, N, K, c, ldc, accumulate, pool);
}

void PackB(Operand b, int64_t K, int64_t N, PackedB* out, ThreadPool& pool) {
  const KernelSpec s = Spec(ActiveKernel());
  out->K = K;
  out->N = N;
  out->nr = s.nr;
  out->words.resize(static_cast<size_t>((N + s.nr - 1) / s.nr * ((K + 1) / 2) * s.nr));
  if (N > 0) PackPanels(b, K, N, s.nr, out->words.data(), pool);
}

void GemmPacked(Operand a, const PackedB& b, int64_t M, float* c, int64_t ldc, bool accumulate, ThreadPool& pool) {
  if (M <= 0 || b.N <= 0) return;
  const KernelSpec s = Spec(ActiveKernel());
  LANLM_CHECK(s.nr == b.nr, "bf16 weights packed for another kernel's tile width");
  Multiply(s, a, b.words.data(), M, b.N, b.K, c, ldc, accumulate, pool);
}

}  // namespace lanlm::engine::gemm_bf16
