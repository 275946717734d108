// ValidationEval; see validation_eval.h.
#include "coordinator/validation_eval.h"

#include "engine/train/trainer.h"

namespace lanlm::coordinator {

ValidationEval::ValidationEval(const engine::ModelConfig& config, int micro_batch, std::vector<int32_t> tokens,
                               int64_t every, int64_t windows)
    : config_(config), micro_batch_(micro_batch), tokens_(std::move(tokens)), every_(every), windows_(windows) {}

ValidationEval::~ValidationEval() = default;

bool ValidationEval::possible() const { return static_cast<int64_t>(tokens_.size()) >= config_.context + 1; }

bool ValidationEval::Due(int64_t step, int64_t round_steps, int64_t end_step) const {
  if (!possible()) return false;
  if (step >= end_step) return true;
  return every_ > 0 && step / every_ != (step - round_steps) / every_;
}

double ValidationEval::Evaluate(const float* params, engine::ThreadPool& pool) {
  if (!model_) model_ = std::make_unique<engine::Model>(config_, micro_batch_);
  return engine::EvaluateLoss(*model_, params, tokens_, windows_, pool).mean_loss;
}

}  // namespace lanlm::coordinator
