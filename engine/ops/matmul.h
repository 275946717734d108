// engine/ops/ owns the differentiable ops, each a forward+backward pair, and their kernels. Matmul (this
// file, weights stored [out, in] as torch.nn.Linear, DESIGN.md §2): y = x · Wᵀ. Forward is parallel over
// output rows/columns; the weight gradient over weight rows: one thread sums each output, bit-identical.
#pragma once

#include <cstdint>
#include <string_view>

#include "engine/base/thread_pool.h"
#include "engine/ops/bf16.h"

namespace lanlm::engine {

// With Precision::kBf16 every product follows the bf16 contract (bf16.h): both inputs rounded
// to bf16, fp32 accumulation in VDPBF16PS's pair order; the caller checks Bf16Supported().

// y[r, o] = sum_i x[r, i] * w[o, i]      x (R, I), w (O, I), y (R, O). Overwrites y.
void MatmulForward(const float* x, const float* w, int64_t rows, int64_t in, int64_t out, float* y,
                   ThreadPool& pool, Precision precision = Precision::kFp32);

// dx[r, i] += sum_o dy[r, o] * w[o, i]   (skipped when dx is null)
// dw[o, i] += sum_r dy[r, o] * x[r, i]   (skipped when dw is null)
void MatmulBackward(const float* dy, const float* x, const float* w, int64_t rows, int64_t in, int64_t out,
                    float* dx, float* dw, ThreadPool& pool, Precision precision = Precision::kFp32);

// Whether this CPU can run Precision::kBf16 exactly (AVX512_BF16, AVX-512F or AVX2 + FMA), and
// the name of the bf16 kernel it runs ("avx512bf16", "emulated-avx2-fma", ...).
bool Bf16Supported();
const char* Bf16KernelPath();
// Benchmarks and tests: "auto" (native where the CPU has AVX512_BF16), "native" or "emulated".
// false (nothing changed) for another name, or "native" on a CPU without AVX512_BF16.
bool SelectBf16Kernel(std::string_view name);

}  // namespace lanlm::engine
