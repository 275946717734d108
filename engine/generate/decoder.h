// KV-cached incremental forward for generation: each call appends tokens to a session's
// cache and computes only the new positions (the seed's KV-cache: O(n) per token).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/base/status.h"
#include "engine/generate/decoder_steps.h"
#include "engine/generate/serving_weights.h"
#include "engine/model/model_config.h"
#include "engine/ops/attention.h"
#include "engine/ops/rope.h"
#include "engine/base/thread_pool.h"

namespace lanlm::engine {

// Keys (after RoPE) and values of every layer for positions [0, length). One per session.
// Keys are held in transposed blocks of positions, the layout attention's scores read in place
// (attention.h, KeyIndex): a new position is written once instead of every step re-packing
// the whole cache. The size is that of plain rows: 2 * L * capacity * C floats (what admission
// control counts).
struct KvCache {
  explicit KvCache(const ModelConfig& config);
  int64_t length = 0;        // positions filled
  int64_t capacity = 0;      // = config.context
  int64_t row = 0;           // floats per position per layer (= C)
  std::vector<float> k;      // (L, capacity * C): layer l's keys at l * capacity * C, attention.h's blocks
  std::vector<float> v;      // (L, capacity, C)
  int64_t MemoryBytes() const { return static_cast<int64_t>((k.size() + v.size()) * sizeof(float)); }
  // Element c (< C) of layer l's key at position pos.
  float Key(int64_t l, int64_t pos, int64_t c) const {
    return k[l * capacity * row + KeyIndex(pos, c, row, capacity)];
  }
};

// Scratch buffers for decoding; one per thread that decodes. Not thread-safe.
class Decoder {
 public:
  explicit Decoder(const ModelConfig& config);

  // Appends tokens[0, n) at positions cache.length... and writes the logits (V) after the
  // last one. OUT_OF_RANGE when cache.length + n exceeds the context (cache unchanged);
  // INVALID_ARGUMENT for a token outside [0, V) or weights of another config.
  Status Feed(const ServingWeights& weights, const int32_t* tokens, int64_t n, KvCache& cache, float* logits,
              ThreadPool& pool);

  // One new token for each of caches.size() sessions at once (weights read once for all);
  // logits (n, V). Same errors as Feed, checked for all before any cache changes.
  Status FeedBatch(const ServingWeights& weights, const std::vector<KvCache*>& caches, const int32_t* tokens,
                   float* logits, ThreadPool& pool);

  // The same on the parameter block (ParameterCount floats) as fp32 weights, converted on every
  // call (so a block changed in place between calls is always read afresh): for tests and
  // one-off use; servers convert once (ServingWeights::Convert).
  Status Feed(const float* params, const int32_t* tokens, int64_t n, KvCache& cache, float* logits,
              ThreadPool& pool);
  Status FeedBatch(const float* params, const std::vector<KvCache*>& caches, const int32_t* tokens,
                   float* logits, ThreadPool& pool);

 private:
  const ServingWeights& Fp32(const float* params);  // converted afresh on every call

  ModelConfig config_;
  RopeTable rope_;
  AlignedVector<float> scratch_;  // rows of C and F floats: aligned while C, F are multiples of 16
  decode::Work work_;
  std::unique_ptr<ServingWeights> fp32_;  // the last Fp32 conversion
};

}  // namespace lanlm::engine
