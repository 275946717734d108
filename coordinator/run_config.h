// CoordinatorOptions (every lanlm-coordinator flag with its default and help) and PrepareRun,
// which turns them into what a training run needs: tokenizer, corpus, TrainOptions and the
// initial (or resumed) TrainingState, through the same training core as `lanlm train`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/security.h"
#include "engine/base/status.h"
#include "engine/cli/flags.h"
#include "engine/cli/train_flags.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/train/trainer.h"

namespace lanlm::coordinator {

// The shared training flags (engine/cli/train_flags.h: config, overrides, steps, shards, seed, lr,
// ...) with the same meaning and defaults as `lanlm train`, so both produce the same
// fingerprint, and the coordinator's own.
struct CoordinatorOptions : engine::TrainFlags {
  // Cluster.
  std::string listen = "0.0.0.0:50051";
  int min_workers = 1;
  int64_t lease_timeout_ms = 120000;
  int shards_per_lease = 1;     // a power of two: shards a worker computes and pre-sums per lease
  std::string wire = "fp32";    // parameters and gradients on the wire: fp32 | bf16
  int relay_fanout = 1;         // peers one relaying worker feeds (0 = no relay)
  int64_t param_chunk_bytes = int64_t{1} << 20;  // ParamChunk size (not a flag): a relay hop forwards whole chunks
  int local_steps = 0;          // H > 0: DiLoCo rounds of H inner steps per lease (0 = synchronous)
  float outer_lr = 0.7f;        // outer Nesterov step of --local-steps
  float outer_momentum = 0.9f;
  std::string cluster_token_file;
  std::string cluster_token;    // from the environment (LANLM_CLUSTER_TOKEN), never a flag
  int threads = 0;              // optimizer pool; 0 = all cores
  SecurityOptions security;     // TLS, client tokens, reflection (both modes)
  // Checkpoints.
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0;  // steps; 0 = only at the end and on shutdown
  // Serving only.
  bool serve = false;
  std::string checkpoint;

  void Register(FlagSet& flags);
};

// Everything a training run starts from.
struct RunSetup {
  engine::TrainOptions train;
  std::shared_ptr<const engine::BpeTokenizer> tokenizer;
  std::vector<int32_t> train_tokens;
  std::vector<int32_t> validation_tokens;  // the corpus's held-out tail (--validation-fraction)
  engine::TrainingState state;   // step 0, or the resumed checkpoint's step
  int64_t corpus_tokens = 0;
  uint64_t corpus_hash = 0;      // engine::Corpus::hash, recorded in checkpoints
  std::string run_id;            // engine::NewRunId(), or the resumed checkpoint's
};

// The training core (engine/cli/train_run.h) as `lanlm train` runs it: tokenizer, corpus and
// the initial or resumed state under the same resume rule. given: the flags named on the
// command line (FlagSet::Given()).
StatusOr<RunSetup> PrepareRun(const CoordinatorOptions& options, const GivenFlags& given);

}  // namespace lanlm::coordinator
