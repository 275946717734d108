// Low-communication training (DiLoCo, Douillard et al. 2023, arXiv 2311.08105): a replica
// starts a round from the global parameters, runs H inner AdamW steps on its own shards and
// reports the parameter difference; the differences of all replicas are averaged and applied
// with an outer Nesterov-momentum step. A replica's inner optimizer state starts from zero in
// every round, so a round is a pure function of (parameters, data, step): any worker, any
// thread count, a re-run after a crash, all give the same bits.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/base/thread_pool.h"
#include "engine/model/model.h"
#include "engine/train/optimizer.h"

namespace lanlm::engine {

// One replica's round. tokens: (local_steps, shards, B, T+1), inner step h's block first.
// Inner step h (global step first_step + h) takes the mean of the block's shard gradients
// (GradientTree::SumBlock, times 1/shards), clips it and runs AdamW from zeroed moments with
// the run's learning rate at step first_step + h (warm-up and cosine follow the global step;
// bias correction follows h). Writes delta = start - end (n floats) and, per shard, its mean
// loss over the inner steps (nats). CANCELLED when cancelled() turns true between steps.
Status RunLocalSteps(const AdamWOptions& adamw, int64_t first_step, int local_steps, int shards, Model& model, int B,
                     const float* start, const int32_t* tokens, float* delta, float* shard_losses, ThreadPool& pool,
                     const std::function<bool()>& cancelled = {});

// The outer step, elementwise: avg = sum_of_deltas * scale (scale = 1 / replicas, or what
// turns a GradientTree mean into a mean over replicas); m = momentum m + avg;
// params -= lr (avg + momentum m) (Nesterov, as torch.optim.SGD(nesterov=True)).
void OuterNesterovStep(float lr, float momentum, const float* sum_of_deltas, float scale, float* params, float* m,
                       int64_t n, ThreadPool& pool);

// The round settings an outer momentum belongs to, as a checkpoint records them next to it
// (TrainingState::outer_settings; "local_steps", "lr", "momentum"); empty for H = 0.
std::map<std::string, std::string> OuterRoundSettings(int local_steps, float lr, float momentum);

// "--local-steps 2 --outer-lr 0.7 --outer-momentum 0.9" for recorded settings, for messages.
std::string OuterRoundFlags(const std::map<std::string, std::string>& settings);

}  // namespace lanlm::engine
