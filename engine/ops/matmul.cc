// Matmul forward and backward on one register-blocked micro-kernel: a tile of kMr rows x kNr
// columns of C is summed over the whole reduction dimension in registers, in index order,
// then stored (forward) or added once (backward). Tiles are fixed by the shapes alone, so each
// element's arithmetic is the same for any thread count. Not a general BLAS: row-major only.
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

constexpr int kNv = 2;                   // vectors per tile row
constexpr int kNr = kNv * kLanes;        // tile columns
constexpr int kMr = kLanes >= 16 ? 8 : (kLanes == 8 ? 6 : 4);  // tile rows (fits the register file)
constexpr int64_t kSmallRows = 16;       // below this, the forward uses dot products (decoding)

// A panel of B: K rows of kNr contiguous columns at stride ldb.
struct Panel {
  const float* b;
  int64_t ldb;
};

// acc[m][v] = sum_k A(m, k) * B[k, v*kLanes ..], A(m, k) = a[m * a_ms + k * a_ks].
template <int MR>
void MicroKernel(const float* a, int64_t a_ms, int64_t a_ks, Panel p, int64_t K, float* c, int64_t ldc,
                 int n_valid, bool accumulate) {
  VecF acc[MR][kNv];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < kNv; ++v) acc[m][v] = VecF{};
  const float* am[MR];
  for (int m = 0; m < MR; ++m) am[m] = a + m * a_ms;
  const float* b = p.b;
  for (int64_t k = 0; k < K; ++k) {
    VecF bv[kNv];
    for (int v = 0; v < kNv; ++v) bv[v] = LoadU(b + v * kLanes);
    for (int m = 0; m < MR; ++m) {
      const VecF av = Splat(am[m][k * a_ks]);
      for (int v = 0; v < kNv; ++v) acc[m][v] += av * bv[v];
    }
    b += p.ldb;
  }
  for (int m = 0; m < MR; ++m) {
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

using KernelFn = void (*)(const float*, int64_t, int64_t, Panel, int64_t, float*, int64_t, int, bool);

template <int MR>
constexpr KernelFn KernelFor() {
  return &MicroKernel<MR>;
}

KernelFn SelectKernel(int rows) {
  static constexpr KernelFn kTable[] = {
      nullptr,          KernelFor<1>(), KernelFor<2>(), KernelFor<3>(), KernelFor<4>(),
#if defined(__AVX2__) || defined(__AVX512F__)
      KernelFor<5>(),   KernelFor<6>(),
#endif
#if defined(__AVX512F__)
      KernelFor<7>(),   KernelFor<8>(),
#endif
  };
  static_assert(sizeof(kTable) / sizeof(kTable[0]) == kMr + 1);
  return kTable[rows];
}

// C (M x N) = or += A (M x K) · B (K x N), parallel over kMr x kNr tiles (row block fastest).
// panel(j) gives the j-th kNr-column panel of B (zero-padded when N % kNr != 0).
template <typename PanelFn>
void RunTiles(const float* a, int64_t a_ms, int64_t a_ks, int64_t M, int64_t N, int64_t K, PanelFn panel,
              float* c, int64_t ldc, bool accumulate, ThreadPool& pool) {
  const int64_t row_blocks = (M + kMr - 1) / kMr;
  const int64_t col_panels = (N + kNr - 1) / kNr;
  pool.ParallelFor(row_blocks * col_panels, 2 * kMr * kNr * K, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t j = t / row_blocks;
      const int64_t rb = t % row_blocks;
      const int64_t m0 = rb * kMr;
      const int64_t n0 = j * kNr;
      const int rows = static_cast<int>(std::min<int64_t>(kMr, M - m0));
      const int cols = static_cast<int>(std::min<int64_t>(kNr, N - n0));
      SelectKernel(rows)(a + m0 * a_ms, a_ms, a_ks, panel(j), K, c + m0 * ldc + n0, ldc, cols, accumulate);
    }
  });
}

// Copies columns [n0, n0 + kNr) of B (K x N, stride ldb) into dst (K x kNr), zero-padding past N.
void PackPanel(const float* b, int64_t ldb, int64_t K, int64_t N, int64_t n0, float* dst) {
  const int64_t cols = std::min<int64_t>(kNr, N - n0);
  for (int64_t k = 0; k < K; ++k) {
    float* d = dst + k * kNr;
    const float* s = b + k * ldb + n0;
    for (int64_t n = 0; n < cols; ++n) d[n] = s[n];
    for (int64_t n = cols; n < kNr; ++n) d[n] = 0.0f;
  }
}

// Runs C (=|+=) A · B where B (K x N) is row-major at stride ldb: full panels are read in
// place, the ragged last one from a zero-padded copy.
void GemmRowMajorB(const float* a, int64_t a_ms, int64_t a_ks, const float* b, int64_t ldb, int64_t M,
                   int64_t N, int64_t K, float* c, int64_t ldc, bool accumulate, ThreadPool& pool) {
  thread_local std::vector<float> tail_buf;
  const int64_t full = N / kNr;
  const float* tail = nullptr;
  if (N % kNr != 0) {
    float* t = simd::Scratch(tail_buf, K * kNr);
    PackPanel(b, ldb, K, N, full * kNr, t);
    tail = t;
  }
  RunTiles(
      a, a_ms, a_ks, M, N, K,
      [&](int64_t j) { return j < full ? Panel{b + j * kNr, ldb} : Panel{tail, kNr}; }, c, ldc, accumulate,
      pool);
}

// y[r * out] = x[r, :] · w_row for every r (one output column; not inlined, so its arithmetic
// is one compiled body whatever the split).
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
  // B = wᵀ (in x out): packed into panels [out / kNr][in][kNr] so each panel streams contiguously.
  thread_local std::vector<float> packed_buf;
  const int64_t panels = (out + kNr - 1) / kNr;
  float* packed = simd::Scratch(packed_buf, panels * in * kNr);
  pool.ParallelFor(panels, 2 * in * kNr, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      float* dst = packed + j * in * kNr;
      const int64_t cols = std::min<int64_t>(kNr, out - j * kNr);
      for (int64_t n = 0; n < cols; ++n) {
        const float* src = w + (j * kNr + n) * in;
        for (int64_t i = 0; i < in; ++i) dst[i * kNr + n] = src[i];
      }
      for (int64_t n = cols; n < kNr; ++n)
        for (int64_t i = 0; i < in; ++i) dst[i * kNr + n] = 0.0f;
    }
  });
  RunTiles(
      x, in, 1, rows, out, in, [&](int64_t j) { return Panel{packed + j * in * kNr, kNr}; }, y, out,
      /*accumulate=*/false, pool);
}

void MatmulBackward(const float* dy, const float* x, const float* w, int64_t rows, int64_t in, int64_t out,
                    float* dx, float* dw, ThreadPool& pool) {
  if (rows <= 0 || in <= 0 || out <= 0) return;
  // dx (rows x in) += dy (rows x out) · w (out x in).
  if (dx != nullptr) GemmRowMajorB(dy, out, 1, w, in, rows, in, out, dx, in, /*accumulate=*/true, pool);
  // dw (out x in) += dyᵀ (out x rows) · x (rows x in); A(o, r) = dy[r * out + o].
  if (dw != nullptr) GemmRowMajorB(dy, 1, out, x, in, out, in, rows, dw, in, /*accumulate=*/true, pool);
}

}  // namespace lanlm::engine
