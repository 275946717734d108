// CoordinatorOptions (every lanlm-coordinator flag with its default and help) and PrepareRun,
// which turns them into what a training run needs: tokenizer, corpus, TrainOptions and the
// initial (or resumed) TrainingState, built exactly as the single-process trainer builds them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/cli/flags.h"
#include "engine/base/status.h"
#include "engine/data/corpus.h"
#include "engine/model/model_config.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/cli/train_flags.h"
#include "engine/train/trainer.h"

namespace lanlm::coordinator {

// The shared training flags (engine/cli/train_flags.h: config, overrides, steps, shards, seed, lr,
// ...) with the same meaning and defaults as `lanlm train`, so both produce the same
// fingerprint, and the coordinator's own.
struct CoordinatorOptions : engine::TrainFlags {
  // Data.
  std::string corpus;           // UTF-8 text file
  std::string tokenizer;        // tokenizer file; empty = train one on the corpus
  // Cluster.
  std::string listen = "0.0.0.0:50051";
  int min_workers = 1;
  int64_t lease_timeout_ms = 120000;
  int shards_per_lease = 1;     // a power of two: shards a worker computes and pre-sums per lease
  std::string cluster_token_file;
  std::string cluster_token;    // from the environment (LANLM_CLUSTER_TOKEN), never a flag
  int threads = 0;              // optimizer pool; 0 = all cores
  // Checkpoints.
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0;  // steps; 0 = only at the end and on shutdown
  std::string resume;
  // Serving only.
  bool serve = false;
  std::string checkpoint;

  void Register(FlagSet& flags);
};

// The named config (S or M) with the overrides applied and V = vocab_size
// (engine::ModelConfigFromFlags).
StatusOr<engine::ModelConfig> BuildModelConfig(const CoordinatorOptions& options, int vocab_size);

// Everything a training run starts from.
struct RunSetup {
  engine::TrainOptions train;
  std::shared_ptr<const engine::BpeTokenizer> tokenizer;
  std::vector<int32_t> train_tokens;
  engine::TrainingState state;   // step 0, or the resumed checkpoint's step
  int64_t corpus_tokens = 0;
  uint64_t corpus_hash = 0;      // engine::Corpus::hash, recorded in checkpoints
  std::string run_id;            // engine::NewRunId(), or the resumed checkpoint's
};

// TrainOptions from flags for a model of vocabulary vocab_size (engine::TrainOptionsFromFlags).
StatusOr<engine::TrainOptions> MakeTrainOptions(const CoordinatorOptions& options, int vocab_size);
// Loads or trains the tokenizer, loads the corpus, and initialises or resumes the state, as
// `lanlm train` does. On --resume the checkpoint's config, tokenizer and training options
// win; --steps, when set, moves the target step count and the schedule's end with it.
StatusOr<RunSetup> PrepareRun(const CoordinatorOptions& options, bool steps_flag_set);

}  // namespace lanlm::coordinator
