// engine/model/ owns the model: its config (model_config.h), the parameter block layout (parameters.h)
// and Model (this file): the training-time forward pass with activation caching and the hand-written
// backward pass, for one micro-batch of B sequences of T tokens. Parameters live outside (parameters.h);
// the Model owns only the rope table and the activations, allocated once. One Model per training thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "engine/base/thread_pool.h"
#include "engine/model/model_config.h"
#include "engine/model/parameters.h"
#include "engine/ops/bf16.h"
#include "engine/ops/rope.h"

namespace lanlm::engine {

struct Activations;  // per-layer caches and backward scratch (model.cc)

// Optional streaming hooks (the cluster worker overlaps transfers with compute). Offsets are
// floats into the parameter / gradient block, whose tensors are in forward order
// (parameters.h). A missing hook costs nothing.
struct ModelStreamHooks {
  // Forward calls it before it first reads params[0, end): before the embedding, before each
  // layer, before the final norm and before the classifier, with increasing `end`; it returns
  // true once those floats are in place, or false when they never will be (the stream broke):
  // Forward then stops at once and returns NaN, and Backward must not follow.
  std::function<bool(int64_t end)> params_ready;
  // Backward calls it once grads[begin, end) holds its final value (no later op of this
  // Backward touches it): the classifier, the final norm, layers L-1..0, the embedding, in
  // that order; the ranges are disjoint and cover the block.
  std::function<void(int64_t begin, int64_t end)> grads_final;
};

class Model {
 public:
  // Allocates activations for up to max_batch sequences of config.context tokens. precision
  // applies to the large matmuls (projections, feed-forward, classifier; bf16.h's contract);
  // attention's per-head products, norms, RoPE, SwiGLU and the loss stay fp32.
  Model(const ModelConfig& config, int max_batch, Precision precision = Precision::kFp32);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  int max_batch() const { return max_batch_; }
  Precision precision() const { return precision_; }

  // tokens (B, T+1) with T = config.context: inputs tokens[b, 0..T-1], targets tokens[b, 1..T].
  // Returns the mean cross-entropy over the B*T positions and keeps every activation for
  // Backward. Tokens must be < V (callers validate input from outside).
  // bf16: the weights are rounded and packed once here (layer by layer, after hooks report
  // them ready) and reused by Backward; with reuse_packed_weights the caller promises params
  // holds the same values as at the previous complete Forward (the next micro-batch of one step,
  // the next window of one evaluation), and that packing is reused too (the same bits).
  float Forward(const float* params, const int32_t* tokens, int B, ThreadPool& pool,
                const ModelStreamHooks* hooks = nullptr, bool reuse_packed_weights = false);

  // After Forward with the same arguments: accumulates (+=) d(mean loss)/d(params) into grads
  // (same layout as params).
  void Backward(const float* params, const int32_t* tokens, int B, float* grads, ThreadPool& pool,
                const ModelStreamHooks* hooks = nullptr);

  // Logits (B*T, V) of the last Forward. (Backward may overwrite them.)
  const float* logits() const;

 private:
  ModelConfig config_;
  int max_batch_;
  Precision precision_;
  RopeTable rope_;
  std::unique_ptr<Activations> acts_;
};

}  // namespace lanlm::engine
