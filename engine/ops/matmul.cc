// Matmul forward and backward on one packed, register-blocked micro-kernel (GotoBLAS-style,
// without splitting the reduction): B is packed once per call into kNr-column panels, each
// block of kMr rows of A into a K x kMr strip, and a kMr x kNr tile of C is summed over the
// whole reduction in registers, in index order, then stored (forward) or added once
// (backward). Work items are row blocks fixed by the shapes, and every element goes through
// the same kernel, so results are bit-identical for any thread count. Row-major only.
#include "engine/ops/matmul.h"

#include <algorithm>
#include <vector>

#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

using simd::kLanes;
using simd::LoadU;
using simd::Splat;
using simd::StoreU;
using simd::VecF;

constexpr int kNv = 2;             // vectors per tile row
constexpr int kNr = kNv * kLanes;  // tile columns
// Tile rows: kMr * kNv accumulators + kNv B vectors + 1 broadcast fit the register file
// (32 zmm with AVX-512, 16 ymm with AVX2, 16 xmm with SSE).
constexpr int kMr = kLanes >= 16 ? 12 : (kLanes == 8 ? 6 : 4);
constexpr int64_t kSmallRows = 16;  // below this, the forward uses dot products (decoding)

// c (m_valid x n_valid of a kMr x kNr tile, stride ldc) (=|+=) sum_k ap[k, :]ᵀ bp[k, :],
// ap (K x kMr) and bp (K x kNr) packed. Each element is one FMA chain over k in order.
[[gnu::noipa]] void MicroKernel(const float* ap, const float* bp, int64_t K, float* c, int64_t ldc, int m_valid,
                                int n_valid, bool accumulate) {
  VecF acc[kMr][kNv];
  for (int m = 0; m < kMr; ++m)
    for (int v = 0; v < kNv; ++v) acc[m][v] = VecF{};
  for (int64_t k = 0; k < K; ++k, ap += kMr, bp += kNr) {
    VecF bv[kNv];
    for (int v = 0; v < kNv; ++v) bv[v] = LoadU(bp + v * kLanes);
    for (int m = 0; m < kMr; ++m) {
      const VecF av = Splat(ap[m]);
      for (int v = 0; v < kNv; ++v) acc[m][v] += av * bv[v];
    }
  }
  for (int m = 0; m < m_valid; ++m) {
    float* cm = c + m * ldc;
    if (n_valid == kNr) {
      for (int v = 0; v < kNv; ++v) {
        float* dst = cm + v * kLanes;
        StoreU(dst, accumulate ? LoadU(dst) + acc[m][v] : acc[m][v]);
      }
    } else {
      float tmp[kNr];
      for (int v = 0; v < kNv; ++v) StoreU(tmp + v * kLanes, acc[m][v]);
      for (int n = 0; n < n_valid; ++n) cm[n] = accumulate ? cm[n] + tmp[n] : tmp[n];
    }
  }
}

// A (M x K) as A(m, k) = a[m * a_ms + k * a_ks]; B (K x N) as B(k, n) = b[k * b_ks + n * b_ns].
struct Operand {
  const float* p;
  int64_t s_row;  // stride of A's m / B's k
  int64_t s_col;  // stride of A's k / B's n
};

// Packs B into panels [N / kNr][K][kNr] (zero-padded past N), parallel over panels.
void PackB(Operand b, int64_t K, int64_t N, float* dst, ThreadPool& pool) {
  const int64_t panels = (N + kNr - 1) / kNr;
  pool.ParallelFor(panels, 2 * K * kNr, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      float* d = dst + j * K * kNr;
      const int64_t n0 = j * kNr;
      const int64_t cols = std::min<int64_t>(kNr, N - n0);
      if (b.s_col == 1) {  // rows of B contiguous: copy kNr floats per k
        for (int64_t k = 0; k < K; ++k) {
          const float* s = b.p + k * b.s_row + n0;
          for (int64_t n = 0; n < cols; ++n) d[k * kNr + n] = s[n];
          for (int64_t n = cols; n < kNr; ++n) d[k * kNr + n] = 0.0f;
        }
      } else {  // columns of B contiguous (B = wᵀ): transpose
        for (int64_t n = 0; n < cols; ++n) {
          const float* s = b.p + (n0 + n) * b.s_col;
          for (int64_t k = 0; k < K; ++k) d[k * kNr + n] = s[k * b.s_row];
        }
        for (int64_t n = cols; n < kNr; ++n)
          for (int64_t k = 0; k < K; ++k) d[k * kNr + n] = 0.0f;
      }
    }
  });
}

// Packs blocks [rb0, rb0 + nb) of kMr rows of A into dst (nb strips of K x kMr), zero rows
// past M.
void PackA(Operand a, int64_t M, int64_t K, int64_t rb0, int64_t nb, float* dst) {
  if (a.s_row == 1) {
    // A = dyᵀ: the strips' rows of A are one contiguous run of each row of dy; walk dy row by
    // row (rows far apart, so prefetch ahead) and scatter each run into the strips.
    const int64_t m0 = rb0 * kMr;
    const int64_t rows = std::min<int64_t>(nb * kMr, M - m0);
    constexpr int64_t kAhead = 16;
    for (int64_t k = 0; k < K; ++k) {
      const float* s = a.p + k * a.s_col + m0;
      if (k + kAhead < K) {
        for (int64_t m = 0; m < rows; m += 16) __builtin_prefetch(s + kAhead * a.s_col + m);
      }
      for (int64_t b = 0; b < nb; ++b) {
        float* d = dst + b * K * kMr + k * kMr;
        const int64_t r0 = b * kMr;
        if (r0 + kMr <= rows) {
          __builtin_memcpy(d, s + r0, sizeof(float) * kMr);
        } else {
          for (int64_t m = 0; m < kMr; ++m) d[m] = r0 + m < rows ? s[r0 + m] : 0.0f;
        }
      }
    }
    return;
  }
  for (int64_t b = 0; b < nb; ++b) {  // rows of A contiguous: transpose each strip
    const int64_t m0 = (rb0 + b) * kMr;
    const int64_t rows = std::min<int64_t>(kMr, M - m0);
    float* d = dst + b * K * kMr;
    for (int64_t m = 0; m < rows; ++m) {
      const float* s = a.p + (m0 + m) * a.s_row;
      for (int64_t k = 0; k < K; ++k) d[k * kMr + m] = s[k * a.s_col];
    }
    for (int64_t m = rows; m < kMr; ++m)
      for (int64_t k = 0; k < K; ++k) d[k * kMr + m] = 0.0f;
  }
}

// C (M x N, stride ldc) (=|+=) A · B. Parallel over groups of row blocks (kMr rows of C each;
// the group size only balances work and packing, it never changes an element's arithmetic):
// a group packs its strips of A once, then sweeps the panels of B, each panel across the
// group's strips while it is hot in cache.
void Gemm(Operand a, Operand b, int64_t M, int64_t N, int64_t K, float* c, int64_t ldc, bool accumulate,
          ThreadPool& pool) {
  thread_local std::vector<float> b_buf;
  const int64_t panels = (N + kNr - 1) / kNr;
  float* bp = simd::Scratch(b_buf, panels * K * kNr);
  PackB(b, K, N, bp, pool);
  const int64_t row_blocks = (M + kMr - 1) / kMr;
  const int64_t group = std::clamp<int64_t>(row_blocks / (4 * int64_t{pool.size()}), 1, 8);
  const int64_t groups = (row_blocks + group - 1) / group;
  pool.ParallelFor(groups, 2 * group * kMr * panels * kNr * K, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> a_buf;
    float* ap = simd::Scratch(a_buf, group * K * kMr);
    for (int64_t g = begin; g < end; ++g) {
      const int64_t rb0 = g * group;
      const int64_t nb = std::min(group, row_blocks - rb0);
      PackA(a, M, K, rb0, nb, ap);
      for (int64_t j = 0; j < panels; ++j) {
        const int n_valid = static_cast<int>(std::min<int64_t>(kNr, N - j * kNr));
        for (int64_t blk = 0; blk < nb; ++blk) {
          const int64_t m0 = (rb0 + blk) * kMr;
          const int m_valid = static_cast<int>(std::min<int64_t>(kMr, M - m0));
          MicroKernel(ap + blk * K * kMr, bp + j * K * kNr, K, c + m0 * ldc + j * kNr, ldc, m_valid, n_valid,
                      accumulate);
        }
      }
    }
  });
}

// y[r * out] = x[r, :] · w_row for every r (one output column; one compiled body whatever the
// split).
[[gnu::noipa]] void DotColumn(const float* x, const float* w_row, int64_t rows, int64_t in, int64_t out,
                              float* y) {
  for (int64_t r = 0; r < rows; ++r) y[r * out] = simd::Dot(x + r * in, w_row, in);
}

}  // namespace

void MatmulForward(const float* x, const float* w, int64_t rows, int64_t in, int64_t out, float* y,
                   ThreadPool& pool) {
  if (rows <= 0 || out <= 0) return;
  if (rows < kSmallRows) {
    // Decoding: one dot product per output, w read once, no packing.
    pool.ParallelFor(out, 2 * rows * in, [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) DotColumn(x, w + o * in, rows, in, out, y + o);
    });
    return;
  }
  // y (rows x out) = x (rows x in) · wᵀ (in x out).
  Gemm({x, in, 1}, {w, 1, in}, rows, out, in, y, out, /*accumulate=*/false, pool);
}

void MatmulBackward(const float* dy, const float* x, const float* w, int64_t rows, int64_t in, int64_t out,
                    float* dx, float* dw, ThreadPool& pool) {
  if (rows <= 0 || in <= 0 || out <= 0) return;
  // dx (rows x in) += dy (rows x out) · w (out x in).
  if (dx != nullptr) Gemm({dy, out, 1}, {w, in, 1}, rows, in, out, dx, in, /*accumulate=*/true, pool);
  // dw (out x in) += dyᵀ (out x rows) · x (rows x in); A(o, r) = dy[r * out + o].
  if (dw != nullptr) Gemm({dy, 1, out}, {x, in, 1}, out, in, rows, dw, in, /*accumulate=*/true, pool);
}

}  // namespace lanlm::engine
