// The single-process reference run; see local_run.h.
#include "coordinator/local_run.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "engine/io/atomic_file.h"
#include "engine/io/checkpoint.h"

namespace lanlm::coordinator {

StatusOr<RunResult> RunLocal(const CoordinatorOptions& options, bool steps_flag_set) {
  if (!options.checkpoint_dir.empty()) {
    LANLM_RETURN_IF_ERROR(engine::PrepareWritableDir(options.checkpoint_dir, "--checkpoint-dir"));
  }
  LANLM_ASSIGN_OR_RETURN(RunSetup setup, PrepareRun(options, steps_flag_set));
  engine::ThreadPool pool(options.threads);
  engine::LocalTrainer trainer(setup.train, setup.train_tokens, setup.state, pool);
  const int64_t end = options.stop_after > 0 ? std::min(options.stop_after, setup.train.steps) : setup.train.steps;
  const double tokens = static_cast<double>(setup.train.shards) * setup.train.micro_batch * setup.train.model.context;
  spdlog::info("local training {} steps from step {}: model {} B={} S={} threads={}", end, setup.state.step,
               setup.train.model.ToString(), setup.train.micro_batch, setup.train.shards, pool.size());
  RunResult result;
  while (setup.state.step < end) {
    const auto start = std::chrono::steady_clock::now();
    LANLM_ASSIGN_OR_RETURN(result.loss, trainer.Step());
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("step {}/{} loss={:.4f} tok/s={:.0f} wall_ms={:.1f}", setup.state.step, end, result.loss,
                 tokens / wall, wall * 1e3);
  }
  result.finished = true;
  result.step = setup.state.step;
  result.fingerprint = setup.state.Fingerprint();
  if (!options.checkpoint_dir.empty()) {
    std::filesystem::create_directories(options.checkpoint_dir);
    char name[64];
    std::snprintf(name, sizeof(name), "step-%08" PRId64 ".safetensors", setup.state.step);
    const std::string path = (std::filesystem::path(options.checkpoint_dir) / name).string();
    engine::Checkpoint checkpoint;
    checkpoint.config = setup.state.config;
    checkpoint.step = setup.state.step;
    checkpoint.seed = setup.train.seed;
    checkpoint.corpus_hash = setup.corpus_hash;
    checkpoint.run_id = setup.run_id;
    checkpoint.training = setup.train.ToMap();
    checkpoint.tokenizer = setup.tokenizer->Serialize();
    checkpoint.params = std::move(setup.state.params);
    checkpoint.adam_m = std::move(setup.state.adam_m);
    checkpoint.adam_v = std::move(setup.state.adam_v);
    LANLM_RETURN_IF_ERROR(engine::SaveCheckpoint(path, checkpoint));
    result.checkpoint = path;
  }
  return result;
}

}  // namespace lanlm::coordinator
