// AdamW with decoupled weight decay, bias correction folded into the step size, linear
// warm-up then a cosine (or constant) schedule, and elementwise gradient clipping
// (DESIGN.md §3 steps 4-5). Parallel over parameter ranges; elementwise, so deterministic.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/model/parameters.h"
#include "engine/base/thread_pool.h"

namespace lanlm::engine {

struct AdamWOptions {
  float lr = 1e-3f;             // peak learning rate α
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.01f;   // λ; not applied to norm weights (TensorInfo::decay)
  int64_t warmup_steps = 100;   // linear warm-up: α·(t+1)/warmup for t < warmup
  std::string schedule = "cosine";  // "cosine" (to min_lr_ratio·α at total_steps) or "constant"
  float min_lr_ratio = 0.1f;
  int64_t total_steps = 1000;
  float clip = 1.0f;            // each gradient element is clamped to [-clip, clip]

  Status Validate() const;
};

// α at 0-based step t (before bias correction).
float LearningRate(const AdamWOptions& options, int64_t step);

// g[i] = clamp(g[i], -limit, limit)
void ClipGradients(float* g, int64_t n, float limit, ThreadPool& pool);

// One AdamW step at 0-based `step` (bias correction uses t = step + 1):
//   m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²
//   αt = α(step) √(1-β2ᵗ)/(1-β1ᵗ);  θ -= αt (m/(√v+ε) + λθ)   (λ = 0 where !decay)
void AdamWStep(const AdamWOptions& options, int64_t step, const std::vector<TensorInfo>& tensors, float* params,
               const float* grads, float* m, float* v, ThreadPool& pool);

}  // namespace lanlm::engine
