// engine/ops/ owns the differentiable ops, each a forward+backward pair, and their kernels. Matmul (this
// file, weights stored [out, in] as torch.nn.Linear, DESIGN.md §2): y = x · Wᵀ. Forward is parallel over
// output rows/columns; the weight gradient over weight rows: one thread sums each output, bit-identical.
#pragma once

#include <cstdint>
#include <string_view>

#include "engine/base/thread_pool.h"
#include "engine/ops/bf16.h"
#include "engine/ops/gemm_bf16.h"

namespace lanlm::engine {

// With Precision::kBf16 every product follows the bf16 contract (bf16.h): both inputs rounded
// to bf16, fp32 accumulation in VDPBF16PS's pair order; the caller checks Bf16Supported().

// A weight w (O, I) rounded to bf16 and packed once in the two layouts its products read
// (forward: wᵀ, pairs along I; backward dx: w, pairs along O), so every micro-batch of a step
// reuses one packing. Each layout takes 2 bytes per weight (half of fp32), both together 4.
struct Bf16PackedWeight {
  gemm_bf16::PackedB forward;   // B = wᵀ (I x O)
  gemm_bf16::PackedB backward;  // B = w  (O x I)
};
void PackBf16Weight(const float* w, int64_t in, int64_t out, Bf16PackedWeight* packed, ThreadPool& pool);

// y[r, o] = sum_i x[r, i] * w[o, i]      x (R, I), w (O, I), y (R, O). Overwrites y.
// packed (bf16 only, optional): w as PackBf16Weight packed it; the same bits as packing per call.
void MatmulForward(const float* x, const float* w, int64_t rows, int64_t in, int64_t out, float* y, ThreadPool& pool,
                   Precision precision = Precision::kFp32, const Bf16PackedWeight* packed = nullptr);

// dx[r, i] += sum_o dy[r, o] * w[o, i]   (skipped when dx is null)
// dw[o, i] += sum_r dy[r, o] * x[r, i]   (skipped when dw is null)
void MatmulBackward(const float* dy, const float* x, const float* w, int64_t rows, int64_t in, int64_t out, float* dx,
                    float* dw, ThreadPool& pool, Precision precision = Precision::kFp32,
                    const Bf16PackedWeight* packed = nullptr);

// Whether this CPU can run Precision::kBf16 exactly (AVX512_BF16, AVX-512F or AVX2 + FMA), and
// the name of the bf16 kernel it runs ("avx512bf16", "emulated-avx2-fma", ...).
bool Bf16Supported();
const char* Bf16KernelPath();
// Benchmarks and tests: "auto" (native where the CPU has AVX512_BF16), "native", "emulated"
// (the widest emulation) or "emulated-avx2" (the AVX2 + FMA one, also on AVX-512 CPUs). false
// (nothing changed) for another name, or for a kernel this CPU cannot run.
bool SelectBf16Kernel(std::string_view name);

}  // namespace lanlm::engine
