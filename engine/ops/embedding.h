// Token embedding lookup and its scatter-add gradient.
#pragma once

#include <cstdint>

#include "engine/base/thread_pool.h"

namespace lanlm::engine {

// out[t, :] = table[tokens[t], :]     tokens (N), table (V, C), out (N, C). Tokens must be < V.
void EmbeddingForward(const int32_t* tokens, const float* table, int64_t n, int64_t dim, float* out,
                      ThreadPool& pool);

// dtable[tokens[t], :] += dout[t, :] for t = 0..N-1. Each distinct token's rows are summed in
// t order and that sum is added once (parallel over columns, so repeated tokens add in a fixed
// order, and a second call adds exactly what the first did).
void EmbeddingBackward(const float* dout, const int32_t* tokens, int64_t n, int64_t dim, float* dtable,
                       ThreadPool& pool);

}  // namespace lanlm::engine
