// SwiGLU gate: h = SiLU(a) ⊙ b with a = x·W1ᵀ, b = x·W3ᵀ (the matmuls are separate ops).
// SiLU(x) = x σ(x); d/dx SiLU(x) = σ(x) (1 + x (1 - σ(x))) (seed brief). Elementwise,
// parallel over positions.
#pragma once

#include <cstdint>

#include "engine/base/thread_pool.h"

namespace lanlm::engine {

// h[i] = SiLU(a[i]) * b[i] for i < n.
void SwiGluForward(const float* a, const float* b, int64_t n, float* h, ThreadPool& pool);

// da[i] += dh[i] * b[i] * SiLU'(a[i]);  db[i] += dh[i] * SiLU(a[i]).
void SwiGluBackward(const float* dh, const float* a, const float* b, int64_t n, float* da, float* db,
                    ThreadPool& pool);

}  // namespace lanlm::engine
