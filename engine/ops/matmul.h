// engine/ops/ owns the differentiable ops, each a forward+backward pair, and their kernels. Matmul (this
// file, weights stored [out, in] as torch.nn.Linear, DESIGN.md §2): y = x · Wᵀ. Forward is parallel over
// output rows/columns; the weight gradient over weight rows: one thread sums each output, bit-identical.
#pragma once

#include <cstdint>

#include "engine/base/thread_pool.h"

namespace lanlm::engine {

// y[r, o] = sum_i x[r, i] * w[o, i]      x (R, I), w (O, I), y (R, O). Overwrites y.
void MatmulForward(const float* x, const float* w, int64_t rows, int64_t in, int64_t out, float* y,
                   ThreadPool& pool);

// dx[r, i] += sum_o dy[r, o] * w[o, i]   (skipped when dx is null)
// dw[o, i] += sum_r dy[r, o] * x[r, i]   (skipped when dw is null)
void MatmulBackward(const float* dy, const float* x, const float* w, int64_t rows, int64_t in, int64_t out,
                    float* dx, float* dw, ThreadPool& pool);

}  // namespace lanlm::engine
