// The single-process reference run; see local_run.h.
#include "coordinator/local_run.h"

#include <chrono>

#include <spdlog/spdlog.h>

#include "coordinator/validation_eval.h"
#include "engine/cli/run_history.h"
#include "engine/io/atomic_file.h"
#include "engine/train/training_checkpoint.h"

namespace lanlm::coordinator {

StatusOr<RunResult> RunLocal(const CoordinatorOptions& options, const GivenFlags& given) {
  if (options.local_steps > 0) {
    return InvalidArgumentError("--local-steps " + std::to_string(options.local_steps) +
                                " is for a cluster; --local trains synchronously");
  }
  if (options.wire != "fp32") {
    return InvalidArgumentError("--wire " + options.wire + " is for a cluster; --local sends nothing over a wire");
  }
  if (!options.checkpoint_dir.empty()) {
    LANLM_RETURN_IF_ERROR(engine::PrepareWritableDir(options.checkpoint_dir, "--checkpoint-dir"));
  }
  LANLM_ASSIGN_OR_RETURN(RunSetup setup, PrepareRun(options, given));
  engine::ThreadPool pool(options.threads);
  engine::LocalTrainer trainer(setup.train, setup.train_tokens, setup.state, pool);
  const int64_t end = options.stop_after > 0 ? std::min(options.stop_after, setup.train.steps) : setup.train.steps;
  const double tokens = static_cast<double>(setup.train.shards) * setup.train.micro_batch * setup.train.model.context;
  spdlog::info("local training {} steps from step {}: model {} B={} S={} threads={}", end, setup.state.step,
               setup.train.model.ToString(), setup.train.micro_batch, setup.train.shards, pool.size());
  // The cluster's history.jsonl and validation losses (--eval-every), as lanlm train --history.
  const std::string history = options.checkpoint_dir.empty() ? "" : options.checkpoint_dir + "/history.jsonl";
  if (!history.empty()) LANLM_RETURN_IF_ERROR(engine::RestartHistory(history, setup.state.step).status());
  ValidationEval eval(setup.train.model, setup.train.micro_batch, std::move(setup.validation_tokens),
                      options.eval_every, options.eval_windows);
  RunResult result;
  while (setup.state.step < end) {
    const auto start = std::chrono::steady_clock::now();
    LANLM_ASSIGN_OR_RETURN(result.loss, trainer.Step());
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("step {}/{} loss={:.4f} tok/s={:.0f} wall_ms={:.1f}", setup.state.step, end, result.loss,
                 tokens / wall, wall * 1e3);
    engine::StepRecord row{.step = setup.state.step, .tokens = setup.state.step * static_cast<int64_t>(tokens),
                           .loss = result.loss, .tokens_per_second = tokens / wall, .step_s = wall,
                           .compute_s = wall, .unix_ms = engine::UnixMillis()};
    if (eval.Due(setup.state.step, 1, end)) {
      row.validation_loss = static_cast<float>(eval.Evaluate(setup.state.params.data(), pool));
      spdlog::info("step {} validation loss={:.4f}", setup.state.step, row.validation_loss);
    }
    if (!history.empty()) LANLM_RETURN_IF_ERROR(engine::AppendHistory(history, row));
  }
  result.finished = true;
  result.step = setup.state.step;
  result.fingerprint = setup.state.Fingerprint();
  if (!options.checkpoint_dir.empty()) {
    LANLM_ASSIGN_OR_RETURN(result.checkpoint, engine::StepCheckpointPath(options.checkpoint_dir, setup.state.step));
    LANLM_RETURN_IF_ERROR(engine::SaveTrainingCheckpoint(result.checkpoint, setup.state, setup.train,
                                                         *setup.tokenizer, setup.corpus_hash, setup.run_id));
  }
  return result;
}

}  // namespace lanlm::coordinator
