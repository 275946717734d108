// `lanlm eval --weights F`: scores a checkpoint through the serving path (KV-cached decoder on
// weights converted to F, as `lanlm generate` and the Generate service compute), next to the same
// decoder on fp32 weights, for the quality figures of the serving formats (BENCHMARKS.md).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/base/status.h"
#include "engine/base/thread_pool.h"
#include "engine/generate/serving_weights.h"

namespace lanlm::client {

struct ServingEvalResult {
  double loss = 0.0;       // mean next-token cross-entropy, nats, in the format
  double fp32_loss = 0.0;  // the same positions decoded with fp32 weights
  int64_t predictions = 0;
  // Teacher-forced: share of positions whose argmax equals fp32's.
  double top1_agreement = 0.0;
  // Free-running: over `prompts` prompts (each window's first tokens), the share of greedy
  // continuation tokens equal to fp32's, position by position.
  double greedy_agreement = 0.0;
  int64_t greedy_tokens = 0;
};

// tokens cut into windows of T+1 as `lanlm eval` does; at most max_windows (0 = all), `batch`
// windows decoded together (FeedBatch). prompts: greedy prompts of prompt_len tokens continued
// for new_tokens tokens (both within the context).
StatusOr<ServingEvalResult> EvaluateServing(const engine::ServingWeights& weights, const engine::ServingWeights& fp32,
                                            const std::vector<int32_t>& tokens, int64_t max_windows, int batch,
                                            int prompts, int prompt_len, int new_tokens, engine::ThreadPool& pool);

}  // namespace lanlm::client
