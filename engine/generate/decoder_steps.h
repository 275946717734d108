// Internal to engine/generate: the projections of Decoder over ServingWeights. A decoded token,
// a batched step of any number of sessions and a prompt of any length all run on GEMV blocks
// (gemv.h) with the surrounding elementwise work fused into the same ParallelFor: Q, K and V in
// one pass, W1 and W3 with the SwiGLU gate in another, Wo and W2 with their residual add, so a
// step wakes the pool five times per layer. Prompts took GEMMs on widened fp32 weights from 16
// (fp32) or 64 rows (bf16, q8) on until the panel kernels, which prefill faster at every length
// measured (up to 512 rows, 1 and 2 threads: BENCHMARKS.md, issue 11, tenth session); a prompt
// now has its rows' decoding arithmetic. Every element's arithmetic is fixed by the shapes:
// bit-identical for any thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/base/thread_pool.h"
#include "engine/generate/serving_weights.h"

namespace lanlm::engine::decode {

// Scratch of one Decoder: int8 activations and their scales for q8.
struct Work {
  AlignedVector<int8_t> xq;
  AlignedVector<float> xs;
  AlignedVector<uint32_t> xp;  // bf16 pair words of the activations
};

// A pool without threads, for ops called from inside another ParallelFor: its ParallelFor
// always runs inline and touches no shared state, so concurrent use is safe.
ThreadPool& InlinePool();

// y (n, w.rows) = x (n, w.cols) · wᵀ.
void Linear(const WeightMatrix& w, const float* x, int64_t n, float* y, Work& work, ThreadPool& pool);

// q, k, v (n, C) = xn (n, C) · {wq, wk, wv}ᵀ.
void ProjectQkv(const ServingLayer& l, const float* xn, int64_t n, float* q, float* k, float* v, Work& work,
                ThreadPool& pool);

// x (n, w.rows) += in (n, w.cols) · wᵀ; tmp (n, w.rows) is scratch.
void AddLinear(const WeightMatrix& w, const float* in, int64_t n, float* x, float* tmp, Work& work, ThreadPool& pool);

// g (n, F) = SiLU(xn · w1ᵀ) ⊙ (xn · w3ᵀ); a, b (n, F) are scratch.
void GatedFfn(const ServingLayer& l, const float* xn, int64_t n, float* a, float* b, float* g, Work& work,
              ThreadPool& pool);

}  // namespace lanlm::engine::decode
