// AdamW, the learning-rate schedule and elementwise clipping. Every element is updated by
// one thread with the same arithmetic, so results do not depend on the pool size.
#include "engine/train/optimizer.h"

#include <algorithm>
#include <cmath>

namespace lanlm::engine {
namespace {

constexpr int64_t kBlock = 4096;  // elements per parallel work item

Status CheckRange(const char* name, double value, double lo, double hi, bool lo_open, bool hi_open) {
  const bool ok = (lo_open ? value > lo : value >= lo) && (hi_open ? value < hi : value <= hi);
  if (!ok) {
    return InvalidArgumentError(std::string("adamw.") + name + " = " + std::to_string(value) + " is outside " +
                                (lo_open ? "(" : "[") + std::to_string(lo) + ", " + std::to_string(hi) +
                                (hi_open ? ")" : "]"));
  }
  return OkStatus();
}

}  // namespace

Status AdamWOptions::Validate() const {
  LANLM_RETURN_IF_ERROR(CheckRange("lr", lr, 0.0, 10.0, true, false));
  LANLM_RETURN_IF_ERROR(CheckRange("beta1", beta1, 0.0, 1.0, false, true));
  LANLM_RETURN_IF_ERROR(CheckRange("beta2", beta2, 0.0, 1.0, false, true));
  LANLM_RETURN_IF_ERROR(CheckRange("eps", eps, 0.0, 1.0, true, false));
  LANLM_RETURN_IF_ERROR(CheckRange("weight_decay", weight_decay, 0.0, 1.0, false, false));
  LANLM_RETURN_IF_ERROR(CheckRange("warmup_steps", static_cast<double>(warmup_steps), 0.0, 1e12, false, false));
  LANLM_RETURN_IF_ERROR(CheckRange("min_lr_ratio", min_lr_ratio, 0.0, 1.0, false, false));
  LANLM_RETURN_IF_ERROR(CheckRange("total_steps", static_cast<double>(total_steps), 1.0, 1e12, false, false));
  LANLM_RETURN_IF_ERROR(CheckRange("clip", clip, 0.0, 1e30, true, false));
  if (schedule != "cosine" && schedule != "constant") {
    return InvalidArgumentError("adamw.schedule = '" + schedule + "' is not one of: cosine, constant");
  }
  return OkStatus();
}

float LearningRate(const AdamWOptions& o, int64_t step) {
  if (step < o.warmup_steps) {
    return o.lr * static_cast<float>(static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps));
  }
  if (o.schedule == "constant") return o.lr;
  // Cosine from lr at the end of warm-up to min_lr_ratio·lr at total_steps, then flat.
  const int64_t span = std::max<int64_t>(1, o.total_steps - o.warmup_steps);
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / static_cast<double>(span));
  const double cosine = 0.5 * (1.0 + std::cos(3.141592653589793 * progress));
  return static_cast<float>(o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * cosine));
}

void ClipGradients(float* g, int64_t n, float limit, ThreadPool& pool) {
  pool.ParallelFor((n + kBlock - 1) / kBlock, 2 * kBlock, [&](int64_t b, int64_t e) {
    const int64_t end = std::min(n, e * kBlock);
    for (int64_t i = b * kBlock; i < end; ++i) g[i] = std::clamp(g[i], -limit, limit);
  });
}

void AdamWStep(const AdamWOptions& o, int64_t step, const std::vector<TensorInfo>& tensors, float* params,
               const float* grads, float* m, float* v, ThreadPool& pool) {
  if (tensors.empty()) return;
  LANLM_CHECK(tensors.front().offset == 0, "tensor table must start at offset 0");
  const int64_t n = tensors.back().offset + tensors.back().size;
  const double t = static_cast<double>(step + 1);
  const float alpha = static_cast<float>(LearningRate(o, step) * std::sqrt(1.0 - std::pow(double{o.beta2}, t)) /
                                         (1.0 - std::pow(double{o.beta1}, t)));
  const float b1 = o.beta1, b2 = o.beta2, eps = o.eps;
  const float one_minus_b1 = 1.0f - b1, one_minus_b2 = 1.0f - b2;

  // Each work item is a block of elements; it walks the tensors that overlap it (tensors are
  // contiguous and in offset order), so decay is per tensor and blocks cross tensor ends.
  pool.ParallelFor((n + kBlock - 1) / kBlock, 12 * kBlock, [&](int64_t bb, int64_t be) {
    const int64_t begin = bb * kBlock, end = std::min(n, be * kBlock);
    auto it = std::upper_bound(tensors.begin(), tensors.end(), begin,
                               [](int64_t pos, const TensorInfo& ti) { return pos < ti.offset; });
    --it;
    for (int64_t i = begin; i < end; ++it) {
      const int64_t stop = std::min(end, it->offset + it->size);
      const float decay = it->decay ? o.weight_decay : 0.0f;
      for (; i < stop; ++i) {
        const float gi = grads[i];
        const float mi = b1 * m[i] + one_minus_b1 * gi;
        const float vi = b2 * v[i] + one_minus_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        params[i] -= alpha * (mi / (std::sqrt(vi) + eps) + decay * params[i]);
      }
    }
  });
}

}  // namespace lanlm::engine
