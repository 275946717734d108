// ValidationEval: the coordinator's validation loss (--eval-every, --eval-windows, the same
// flags and meaning as `lanlm train`): engine EvaluateLoss over the first --eval-windows
// windows of T+1 tokens of the corpus's validation split, on the coordinator's own pool and
// a forward-only Model of the training micro-batch B, so the number is the one `lanlm train`
// prints for the same parameters. It only reads the parameters: training bits never change.
// Loop thread only (TrainingRun).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/base/thread_pool.h"
#include "engine/model/model.h"
#include "engine/model/model_config.h"

namespace lanlm::coordinator {

class ValidationEval {
 public:
  // every: steps between evaluations (0 = only at the end); windows: at most this many
  // windows per evaluation (0 = the whole split).
  ValidationEval(const engine::ModelConfig& config, int micro_batch, std::vector<int32_t> tokens, int64_t every,
                 int64_t windows);
  ~ValidationEval();

  // The split holds at least one window of T+1 tokens.
  bool possible() const;
  // Whether the round that just ended at `step` (covering `round_steps` global steps) is
  // evaluated: it crossed a multiple of every, or it is the run's last (step == end_step).
  bool Due(int64_t step, int64_t round_steps, int64_t end_step) const;
  // Mean next-token loss (nats) of params on the split's windows; the Model is made on first use.
  double Evaluate(const float* params, engine::ThreadPool& pool);

 private:
  const engine::ModelConfig config_;
  const int micro_batch_;
  const std::vector<int32_t> tokens_;
  const int64_t every_, windows_;
  std::unique_ptr<engine::Model> model_;
};

}  // namespace lanlm::coordinator
