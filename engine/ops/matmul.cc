// Matmul forward and backward on one packed, register-blocked micro-kernel (GotoBLAS-style,
// without splitting the reduction): B is packed once per call into kNr-column panels, each
// block of kMr rows of A into a K x kMr strip, and a kMr x kNr tile of C is summed over the
// whole reduction in registers, in index order, then stored (forward) or added once
// (backward). Work items are row blocks fixed by the shapes, and every element goes through
// the same kernel, so results are bit-identical for any thread count. Row-major only.
#include "engine/ops/matmul.h"

#include <algorithm>
#include <vector>

#include "engine/base/check.h"
#include "engine/ops/gemm_bf16.h"
#include "engine/ops/gemm_kernel.h"
#include "engine/ops/simd.h"

namespace lanlm::engine {
namespace {

using gemm::kMr;
using gemm::kNr;
using gemm::MicroKernel;
using gemm::Operand;
using gemm::PackA;
constexpr int64_t kSmallRows = 16;  // below this, the forward uses dot products (decoding)

// Packs B into panels [N / kNr][K][kNr] (zero-padded past N), parallel over panels.
void PackB(Operand b, int64_t K, int64_t N, float* dst, ThreadPool& pool) {
  const int64_t panels = (N + kNr - 1) / kNr;
  pool.ParallelFor(panels, 2 * K * kNr, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) gemm::PackBPanel(b, K, N, j, dst + j * K * kNr);
  });
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
[[gnu::noipa]] void DotColumn(const float* x, const float* w_row, int64_t rows, int64_t in, int64_t out, float* y) {
  for (int64_t r = 0; r < rows; ++r) y[r * out] = simd::Dot(x + r * in, w_row, in);
}

// One GEMM entry point for both precisions.
void GemmFor(Precision precision, Operand a, Operand b, int64_t M, int64_t N, int64_t K, float* c, int64_t ldc,
             bool accumulate, ThreadPool& pool) {
  if (precision == Precision::kBf16) {
    gemm_bf16::Gemm(a, b, M, N, K, c, ldc, accumulate, pool);
  } else {
    Gemm(a, b, M, N, K, c, ldc, accumulate, pool);
  }
}

}  // namespace

bool Bf16Supported() { return gemm_bf16::Supported(); }
const char* Bf16KernelPath() { return gemm_bf16::KernelName(gemm_bf16::ActiveKernel()); }

bool SelectBf16Kernel(std::string_view name) {
  using gemm_bf16::Kernel;
  if (name == "auto") {
    gemm_bf16::UnforceKernel();
    return true;
  }
  if (name == "native") return gemm_bf16::ForceKernel(Kernel::kNative);
  if (name == "emulated") return gemm_bf16::ForceKernel(Kernel::kEmulated);
  if (name == "emulated-avx2") return gemm_bf16::ForceKernel(Kernel::kEmulatedAvx2);
  return false;
}

void PackBf16Weight(const float* w, int64_t in, int64_t out, Bf16PackedWeight* packed, ThreadPool& pool) {
  gemm_bf16::PackB({w, 1, in}, in, out, &packed->forward, pool);
  gemm_bf16::PackB({w, in, 1}, out, in, &packed->backward, pool);
}

void MatmulForward(const float* x, const float* w, int64_t rows, int64_t in, int64_t out, float* y, ThreadPool& pool,
                   Precision precision, const Bf16PackedWeight* packed) {
  if (rows <= 0 || out <= 0) return;
  if (rows < kSmallRows && precision == Precision::kFp32) {
    // Decoding: one dot product per output, w read once, no packing.
    pool.ParallelFor(out, 2 * rows * in, [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) DotColumn(x, w + o * in, rows, in, out, y + o);
    });
    return;
  }
  // y (rows x out) = x (rows x in) · wᵀ (in x out).
  if (precision == Precision::kBf16 && packed != nullptr) {
    LANLM_CHECK(packed->forward.K == in && packed->forward.N == out, "packed bf16 weight of another shape");
    gemm_bf16::GemmPacked({x, in, 1}, packed->forward, rows, y, out, /*accumulate=*/false, pool);
    return;
  }
  GemmFor(precision, {x, in, 1}, {w, 1, in}, rows, out, in, y, out, /*accumulate=*/false, pool);
}

void MatmulBackward(const float* dy, const float* x, const float* w, int64_t rows, int64_t in, int64_t out, float* dx,
                    float* dw, ThreadPool& pool, Precision precision, const Bf16PackedWeight* packed) {
  if (rows <= 0 || in <= 0 || out <= 0) return;
  // dx (rows x in) += dy (rows x out) · w (out x in).
  if (dx != nullptr && precision == Precision::kBf16 && packed != nullptr) {
    LANLM_CHECK(packed->backward.K == out && packed->backward.N == in, "packed bf16 weight of another shape");
    gemm_bf16::GemmPacked({dy, out, 1}, packed->backward, rows, dx, in, /*accumulate=*/true, pool);
  } else if (dx != nullptr) {
    GemmFor(precision, {dy, out, 1}, {w, in, 1}, rows, in, out, dx, in, /*accumulate=*/true, pool);
  }
  // dw (out x in) += dyᵀ (out x rows) · x (rows x in); A(o, r) = dy[r * out + o].
  if (dw != nullptr) GemmFor(precision, {dy, 1, out}, {x, in, 1}, out, in, rows, dw, in, /*accumulate=*/true, pool);
}

}  // namespace lanlm::engine
