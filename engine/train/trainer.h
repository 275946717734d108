// engine/train/ owns training: steps, AdamW, the gradient tree, checkpoint assembly, the step messages.
// This file: the steps shared by `lanlm train` and the coordinator, bit-identical (DESIGN.md §3): shard
// gradients into zeroed buffers, the GradientTree sum / S, elementwise clipping, AdamW, version = step + 1.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/model/model.h"
#include "engine/model/model_config.h"
#include "engine/train/optimizer.h"
#include "engine/base/thread_pool.h"

namespace lanlm::engine {

struct TrainOptions {
  ModelConfig model;
  int micro_batch = 8;        // B: sequences per shard
  int shards = 4;             // S: shards per step (global batch = S·B sequences)
  int64_t steps = 1000;       // total optimizer steps of the run
  uint64_t seed = 1;          // parameters init and data sampling
  float init_std = 0.02f;
  double validation_fraction = 0.05;
  AdamWOptions adamw;
  Precision precision = Precision::kFp32;  // of the large matmuls (engine/ops/bf16.h)

  Status Validate() const;
  // Every field as strings, for checkpoint metadata; FromMap validates and names bad keys.
  std::map<std::string, std::string> ToMap() const;
  static StatusOr<TrainOptions> FromMap(const std::map<std::string, std::string>& map, const ModelConfig& model);
};

// What a checkpoint holds besides options: parameters, AdamW moments and the step count.
struct TrainingState {
  ModelConfig config;
  std::vector<float> params;
  std::vector<float> adam_m;
  std::vector<float> adam_v;
  int64_t step = 0;  // optimizer steps applied = parameter version
  // A --local-steps run's outer Nesterov momentum (params' size) and the round settings it
  // belongs to (OuterRoundSettings, local_steps.h); both empty in synchronous runs.
  std::vector<float> outer_m;
  std::map<std::string, std::string> outer_settings;

  static TrainingState Init(const ModelConfig& config, uint64_t seed, float init_std);
  uint64_t Fingerprint() const;  // of params only
};

// Zeroes grad, then forward + backward on tokens (B, T+1). Returns the shard's mean loss.
float ComputeShardGradient(Model& model, const float* params, const int32_t* tokens, int B, float* grad,
                           ThreadPool& pool);

// grad is the step's averaged gradient: clips it in place, applies AdamW at state.step, and
// increments state.step.
void ApplyUpdate(const AdamWOptions& options, float* grad, TrainingState& state, ThreadPool& pool);

// Mean next-token loss over consecutive non-overlapping windows of T+1 tokens (window i is
// tokens[iT, iT+T]; a final partial window is dropped), at most max_windows of them (0 = all).
struct EvalResult {
  double mean_loss = 0.0;  // nats
  int64_t predictions = 0;
};
EvalResult EvaluateLoss(Model& model, const float* params, const std::vector<int32_t>& tokens,
                        int64_t max_windows, ThreadPool& pool);

// The single-process trainer: each step computes the S shards one after another on this pool.
// Bit-pattern checks (-ffast-math folds std::isnan away) shared by every trainer, so a
// diverged run stops with one clear error instead of training on NaNs. `step` is the step
// being computed (the parameter version the gradient belongs to).
Status CheckGradientFinite(int64_t step, double loss, const float* grad, int64_t n);
Status CheckParametersFinite(int64_t step, const float* params, int64_t n);

class LocalTrainer {
 public:
  LocalTrainer(const TrainOptions& options, const std::vector<int32_t>& train_tokens, TrainingState& state,
               ThreadPool& pool);
  // One optimizer step; returns the mean of the shard losses. FAILED_PRECONDITION when the
  // corpus is too short for a window. DATA_LOSS when training diverged (CheckGradientFinite,
  // CheckParametersFinite): a non-finite loss or gradient leaves the state at the last good
  // step; non-finite parameters after the update leave it unusable (do not save it).
  StatusOr<float> Step();
  Model& model() { return model_; }

 private:
  TrainOptions options_;
  const std::vector<int32_t>& train_;
  TrainingState& state_;
  ThreadPool& pool_;
  Model model_;
  std::vector<int32_t> tokens_;
  std::vector<float> grad_;
  std::vector<float> step_grad_;
};

}  // namespace lanlm::engine
