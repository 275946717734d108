// Next-token sampling (temperature, top-k, top-p, seeded) and the seed brief's
// confidence-based stopping rule.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/status.h"

namespace lanlm::engine {

struct SamplingOptions {
  float temperature = 0.8f;  // 0 = greedy
  int top_k = 40;            // 0 = no limit
  float top_p = 0.95f;       // in (0, 1]
  uint64_t seed = 0;
  Status Validate() const;   // names the field and its limit
};

struct SampledToken {
  int32_t id = 0;
  float probability = 0.0f;      // of the chosen token under softmax(logits) at temperature 1
  float top_probability = 0.0f;  // largest probability under softmax(logits): the confidence
};

class ThreadPool;

// Draws the token for generation step `index` (CounterRng keyed by seed and index, so a run is
// reproducible and a continued session equals one long request). scratch is reused. With a
// pool, the passes over the whole vocabulary (the argmax, the softmax partition, the weights at
// the temperature) run on it, with the same result bit for bit; null runs all on this thread
// (the only choice inside another ParallelFor of the same pool).
SampledToken SampleToken(const float* logits, int vocab, const SamplingOptions& options, uint64_t index,
                         std::vector<float>& scratch, ThreadPool* pool = nullptr);

// Stops after `run` consecutive tokens whose top probability is below `threshold`
// (seed defaults 0.15 and 3). threshold 0 disables the rule.
class ConfidenceStop {
 public:
  ConfidenceStop(float threshold = 0.15f, int run = 3) : threshold_(threshold), run_(run) {}
  // Returns true when generation should stop after this token.
  bool Update(float top_probability) {
    low_ = top_probability < threshold_ ? low_ + 1 : 0;
    return threshold_ > 0.0f && low_ >= run_;
  }
  void Reset() { low_ = 0; }

 private:
  float threshold_;
  int run_;
  int low_ = 0;
};

}  // namespace lanlm::engine
