// Softmax cross-entropy over the vocabulary, parallel over rows.
#pragma once

#include <cstdint>

#include "engine/base/thread_pool.h"

namespace lanlm::engine {

// losses[r] = logsumexp(logits[r, :]) - logits[r, targets[r]]; returns the mean over rows
// (summed in row order, in double). logits (R, V), targets (R) each < V.
float CrossEntropyForward(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                          float* losses, ThreadPool& pool);

// dlogits[r, :] += scale * (softmax(logits[r, :]) - onehot(targets[r]))  (the seed's ŷ - y);
// scale is 1/rows for a mean loss. dlogits may alias logits (then it is overwritten in place
// with the gradient instead of accumulated).
void CrossEntropyBackward(const float* logits, const int32_t* targets, int64_t rows, int64_t vocab, float scale,
                          float* dlogits, ThreadPool& pool);

}  // namespace lanlm::engine
