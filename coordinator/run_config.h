// CoordinatorOptions (every lanlm-coordinator flag with its default and help) and PrepareRun,
// which turns them into what a training run needs: tokenizer, corpus, TrainOptions and the
// initial (or resumed) TrainingState, built exactly as the single-process trainer builds them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/base/flags.h"
#include "engine/base/status.h"
#include "engine/corpus.h"
#include "engine/model_config.h"
#include "engine/tokenizer.h"
#include "engine/trainer.h"

namespace lanlm::coordinator {

struct CoordinatorOptions {
  // Data and model.
  std::string corpus;           // UTF-8 text file
  std::string config = "S";     // S, M, INF15M or "V=..,C=..,L=..,NH=..,F=..,T=.."
  std::string tokenizer;        // tokenizer file; empty = train one on the corpus
  int vocab_size = 0;           // tokenizer training vocabulary; 0 = the config's V
  int micro_batch = 0;          // B; 0 = the named config's (8 for custom configs)
  // Training.
  int64_t steps = 100;
  int shards = 4;
  uint64_t seed = 1;
  float lr = 1e-3f;
  int64_t warmup = 100;
  // Cluster.
  std::string listen = "0.0.0.0:50051";
  int min_workers = 1;
  int64_t lease_timeout_ms = 120000;
  std::string cluster_token_file;
  std::string cluster_token;
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

// "S" / "M" / "INF15M", or comma-separated KEY=VALUE with keys V C L NH F T (any missing key
// keeps config S's value). *micro_batch gets the named config's B (8 for custom ones).
StatusOr<engine::ModelConfig> ParseModelConfig(const std::string& spec, int* micro_batch);

// Everything a training run starts from.
struct RunSetup {
  engine::TrainOptions train;
  std::shared_ptr<const engine::BpeTokenizer> tokenizer;
  std::vector<int32_t> train_tokens;
  engine::TrainingState state;   // step 0, or the resumed checkpoint's step
  int64_t corpus_tokens = 0;
};

// TrainOptions from flags (also what tests use to build the single-process reference).
StatusOr<engine::TrainOptions> MakeTrainOptions(const CoordinatorOptions& options);
// Loads or trains the tokenizer, loads the corpus, and initialises or resumes the state.
// On --resume the checkpoint's config, tokenizer and training options win; --steps, when
// set, only moves the target step count.
StatusOr<RunSetup> PrepareRun(const CoordinatorOptions& options, bool steps_flag_set);

}  // namespace lanlm::coordinator
