// Coordinator flags and run preparation; see run_config.h.
#include "coordinator/run_config.h"

#include <spdlog/spdlog.h>

#include "engine/io/checkpoint.h"

namespace lanlm::coordinator {

void CoordinatorOptions::Register(FlagSet& flags) {
  flags.String("corpus", &corpus, "UTF-8 training text");
  flags.String("tokenizer", &tokenizer, "tokenizer file (default: train one on the corpus)");
  engine::RegisterTrainFlags(flags, this);  // the same flags and wording as `lanlm train`
  flags.String("listen", &listen, "address to serve on, host:port (port 0 picks one)");
  flags.Int("min-workers", &min_workers, "lease no shard while fewer workers are connected", 1, 100000);
  flags.Int("lease-timeout-ms", &lease_timeout_ms, "a lease not committed within this many ms is re-issued", 1,
            int64_t{1} << 40);
  flags.Int("shards-per-lease", &shards_per_lease,
            "shards per lease, a power of two: the worker computes them and sends one pre-summed gradient "
            "(less upload per step; parameters stay bit-identical)",
            1, 64);
  flags.String("cluster-token-file", &cluster_token_file,
               "file holding the cluster token (or the environment variable LANLM_CLUSTER_TOKEN; never a flag)");
  flags.Int("threads", &threads, "threads of the coordinator's pool (optimizer); 0 = all cores", 0, 4096);
  flags.String("checkpoint-dir", &checkpoint_dir, "folder for checkpoints step-NNNNNNNN.safetensors (empty = none)");
  flags.Int("checkpoint-every", &checkpoint_every, "write a checkpoint every N steps (0 = at the end only)", 0,
            int64_t{1} << 40);
  flags.String("resume", &resume, "checkpoint to resume training from");
  flags.Bool("serve", &serve, "serve Generate + ClusterStatus from --checkpoint; no training");
  flags.String("checkpoint", &checkpoint, "checkpoint to serve (with --serve)");
}

StatusOr<engine::ModelConfig> BuildModelConfig(const CoordinatorOptions& options, int vocab_size) {
  return engine::ModelConfigFromFlags(options, vocab_size);
}

StatusOr<engine::TrainOptions> MakeTrainOptions(const CoordinatorOptions& options, int vocab_size) {
  return engine::TrainOptionsFromFlags(options, vocab_size);
}

StatusOr<RunSetup> PrepareRun(const CoordinatorOptions& options, bool steps_flag_set) {
  if (options.corpus.empty()) return InvalidArgumentError("--corpus FILE is required for training");
  RunSetup setup;
  uint64_t checkpoint_corpus_hash = 0;
  if (!options.resume.empty()) {
    LANLM_ASSIGN_OR_RETURN(engine::Checkpoint checkpoint, engine::LoadCheckpoint(options.resume));
    checkpoint_corpus_hash = checkpoint.corpus_hash;
    if (!checkpoint.table_checksummed) {
      spdlog::warn("checkpoint {} predates tensor-table checksums: its tensor layout is not verified (the "
                   "checkpoints of this run will carry one)",
                   options.resume);
    }
    LANLM_ASSIGN_OR_RETURN(setup.train, engine::TrainOptions::FromMap(checkpoint.training, checkpoint.config));
    LANLM_RETURN_IF_ERROR(engine::ApplyResumeSteps(options, steps_flag_set, checkpoint.step, &setup.train));
    LANLM_ASSIGN_OR_RETURN(engine::BpeTokenizer tokenizer, engine::BpeTokenizer::Deserialize(checkpoint.tokenizer));
    setup.tokenizer = std::make_shared<const engine::BpeTokenizer>(std::move(tokenizer));
    if (checkpoint.adam_m.size() != checkpoint.params.size() || checkpoint.adam_v.size() != checkpoint.params.size()) {
      return FailedPreconditionError("checkpoint " + options.resume +
                                     " has no optimizer state; cannot resume training");
    }
    setup.state.config = checkpoint.config;
    setup.state.params = std::move(checkpoint.params);
    setup.state.adam_m = std::move(checkpoint.adam_m);
    setup.state.adam_v = std::move(checkpoint.adam_v);
    setup.state.step = checkpoint.step;
    // A checkpoint written before run ids existed continues as a new run: workers then
    // fetch its parameters instead of trusting any cache.
    setup.run_id = checkpoint.run_id.empty() ? engine::NewRunId() : checkpoint.run_id;
  } else {
    LANLM_RETURN_IF_ERROR(engine::ModelConfigFromFlags(options, 1024).status());  // fail fast on a bad config
    if (!options.tokenizer.empty()) {
      LANLM_ASSIGN_OR_RETURN(engine::BpeTokenizer tokenizer, engine::BpeTokenizer::LoadFromFile(options.tokenizer));
      if (!tokenizer.checksummed()) {
        spdlog::warn("tokenizer file {} has no checksum line (written by an older lanlm): not verified",
                     options.tokenizer);
      }
      setup.tokenizer = std::make_shared<const engine::BpeTokenizer>(std::move(tokenizer));
    } else {
      LANLM_ASSIGN_OR_RETURN(std::string text, engine::ReadTextFile(options.corpus));
      LANLM_ASSIGN_OR_RETURN(engine::BpeTokenizer tokenizer,
                             engine::BpeTokenizer::Train(text, engine::TokenizerVocabSize(options)));
      setup.tokenizer = std::make_shared<const engine::BpeTokenizer>(std::move(tokenizer));
    }
    LANLM_ASSIGN_OR_RETURN(setup.train, engine::TrainOptionsFromFlags(options, setup.tokenizer->vocab_size()));
    setup.state = engine::TrainingState::Init(setup.train.model, setup.train.seed, setup.train.init_std);
    setup.run_id = engine::NewRunId();
  }
  if (setup.tokenizer->vocab_size() > setup.train.model.vocab_size) {
    return InvalidArgumentError("tokenizer vocabulary = " + std::to_string(setup.tokenizer->vocab_size()) +
                                " exceeds the model's V = " + std::to_string(setup.train.model.vocab_size));
  }
  LANLM_ASSIGN_OR_RETURN(engine::Corpus corpus,
                         engine::LoadCorpus(options.corpus, *setup.tokenizer, setup.train.validation_fraction));
  LANLM_RETURN_IF_ERROR(engine::CheckResumeCorpus(options, checkpoint_corpus_hash, corpus.hash, options.corpus));
  setup.corpus_tokens = static_cast<int64_t>(corpus.train.size() + corpus.validation.size());
  setup.corpus_hash = corpus.hash;
  if (static_cast<int64_t>(corpus.train.size()) < setup.train.model.context + 2) {
    return FailedPreconditionError("corpus training split has " + std::to_string(corpus.train.size()) +
                                   " tokens, fewer than T + 2 = " + std::to_string(setup.train.model.context + 2));
  }
  setup.train_tokens = std::move(corpus.train);
  return setup;
}

}  // namespace lanlm::coordinator
