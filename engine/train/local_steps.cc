// DiLoCo replica rounds and the outer Nesterov step; see local_steps.h.
#include "engine/train/local_steps.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "engine/base/number_text.h"
#include "engine/model/parameters.h"
#include "engine/train/gradient_tree.h"
#include "engine/train/trainer.h"

namespace lanlm::engine {
namespace {
constexpr int64_t kBlock = 4096;  // elements per ParallelFor item
}  // namespace

Status RunLocalSteps(const AdamWOptions& adamw, int64_t first_step, int local_steps, int shards, Model& model, int B,
                     const float* start, const int32_t* tokens, float* delta, float* shard_losses, ThreadPool& pool,
                     const std::function<bool()>& cancelled) {
  LANLM_RETURN_IF_ERROR(adamw.Validate());
  if (local_steps < 1 || shards < 1) {
    return InvalidArgumentError("local_steps = " + std::to_string(local_steps) + " and shards = " +
                                std::to_string(shards) + " must both be >= 1");
  }
  const ModelConfig& config = model.config();
  const int64_t n = ParameterCount(config);
  const int64_t per_shard = int64_t{B} * (config.context + 1);
  const std::vector<TensorInfo> tensors = ParameterTensors(config);
  std::vector<float> params(start, start + n), m(static_cast<size_t>(n), 0.0f), v(static_cast<size_t>(n), 0.0f);
  std::vector<double> loss_sum(static_cast<size_t>(shards), 0.0);
  const float mean_scale = 1.0f / static_cast<float>(shards);
  for (int h = 0; h < local_steps; ++h) {
    if (cancelled && cancelled()) return CancelledError("local steps cancelled at inner step " + std::to_string(h));
    std::vector<std::vector<float>> block(static_cast<size_t>(shards));
    for (int k = 0; k < shards; ++k) {
      block[k].resize(static_cast<size_t>(n));
      const int32_t* shard_tokens = tokens + (int64_t{h} * shards + k) * per_shard;
      loss_sum[k] += ComputeShardGradient(model, params.data(), shard_tokens, B, block[k].data(), pool);
    }
    std::vector<float> grad = shards == 1 ? std::move(block[0]) : GradientTree::SumBlock(std::move(block), pool);
    if (shards > 1) {
      for (float& g : grad) g *= mean_scale;
    }
    ClipGradients(grad.data(), n, adamw.clip, pool);
    // The run's rate at the global step, held constant for this one update; bias correction
    // counts the replica's own steps, since its moments started from zero this round.
    AdamWOptions inner = adamw;
    inner.lr = LearningRate(adamw, first_step + h);
    inner.warmup_steps = 0;
    inner.schedule = "constant";
    AdamWStep(inner, h, tensors, params.data(), grad.data(), m.data(), v.data(), pool);
  }
  pool.ParallelFor((n + kBlock - 1) / kBlock, 2 * kBlock, [&](int64_t b, int64_t e) {
    for (int64_t i = b * kBlock; i < std::min(n, e * kBlock); ++i) delta[i] = start[i] - params[i];
  });
  for (int k = 0; k < shards; ++k) shard_losses[k] = static_cast<float>(loss_sum[k] / local_steps);
  return OkStatus();
}

void OuterNesterovStep(float lr, float momentum, const float* sum_of_deltas, float scale, float* params, float* m,
                       int64_t n, ThreadPool& pool) {
  pool.ParallelFor((n + kBlock - 1) / kBlock, 4 * kBlock, [&](int64_t b, int64_t e) {
    for (int64_t i = b * kBlock; i < std::min(n, e * kBlock); ++i) {
      const float avg = sum_of_deltas[i] * scale;
      m[i] = momentum * m[i] + avg;
      params[i] -= lr * (avg + momentum * m[i]);
    }
  });
}

std::map<std::string, std::string> OuterRoundSettings(int local_steps, float lr, float momentum) {
  if (local_steps <= 0) return {};
  // 9 significant digits: a float's text form that parses back to the same bits.
  return {{"local_steps", std::to_string(local_steps)}, {"lr", NumberText(lr, 9)}, {"momentum", NumberText(momentum, 9)}};
}

std::string OuterRoundFlags(const std::map<std::string, std::string>& settings) {
  if (settings.empty()) return "--local-steps 0 (synchronous)";
  auto get = [&](const char* key) {  // 6 digits for people ("0.7", not "0.699999988")
    auto it = settings.find(key);
    if (it == settings.end()) return std::string("?");
    return std::string(key) == "local_steps" ? it->second : NumberText(std::strtod(it->second.c_str(), nullptr));
  };
  return "--local-steps " + get("local_steps") + " --outer-lr " + get("lr") + " --outer-momentum " + get("momentum");
}

}  // namespace lanlm::engine
