// Small elementwise kernels: residual adds and scaling.
#pragma once

#include <cstdint>

#include "engine/base/thread_pool.h"

namespace lanlm::engine {

// y[i] += x[i]
void AddInPlace(float* y, const float* x, int64_t n, ThreadPool& pool);

}  // namespace lanlm::engine
