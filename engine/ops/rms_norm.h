// RMSNorm (Zhang & Sennrich 2019), no bias, parallel over rows.
#pragma once

#include <cstdint>

#include "engine/base/thread_pool.h"

namespace lanlm::engine {

// y[r,:] = x[r,:] * rstd[r] * weight[:],  rstd[r] = 1 / sqrt(mean(x[r,:]^2) + eps)
// Saves rstd (rows) for the backward pass. y may not alias x.
void RmsNormForward(const float* x, const float* weight, int64_t rows, int64_t dim, float eps, float* y,
                    float* rstd, ThreadPool& pool);

// Accumulates (+=) into dx (rows, dim) and dweight (dim). dweight is summed over rows in a
// fixed order independent of the pool size.
void RmsNormBackward(const float* dy, const float* x, const float* weight, const float* rstd, int64_t rows,
                     int64_t dim, float* dx, float* dweight, ThreadPool& pool);

}  // namespace lanlm::engine
