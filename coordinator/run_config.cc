// Coordinator flags and run preparation; see run_config.h.
#include "coordinator/run_config.h"


#include "engine/checkpoint.h"

namespace lanlm::coordinator {

void CoordinatorOptions::Register(FlagSet& flags) {
  flags.String("corpus", &corpus, "UTF-8 training text");
  flags.String("config", &config, "named model config S or M (DESIGN.md §2); V comes from the tokenizer");
  flags.String("tokenizer", &tokenizer, "tokenizer file (default: train one on the corpus)");
  flags.Int("vocab-size", &vocab_size, "vocabulary when training the tokenizer (0 = the config's V)", 0,
            engine::kMaxVocab);
  flags.Int("dim", &dim, "override the config's model dim C (0 = keep)", 0, engine::kMaxDim);
  flags.Int("layers", &layers, "override the config's layer count L (0 = keep)", 0, engine::kMaxLayers);
  flags.Int("heads", &heads, "override the config's head count NH (0 = keep)", 0, engine::kMaxDim);
  flags.Int("ffn-hidden", &ffn_hidden, "override the config's feed-forward hidden size F (0 = keep)", 0,
            4 * engine::kMaxDim);
  flags.Int("context", &context, "override the config's context length T (0 = keep)", 0, engine::kMaxContext);
  flags.Int("micro-batch", &micro_batch, "sequences per shard B (0 = the config's)", 0, 1 << 16);
  flags.Int("steps", &steps, "total optimizer steps of the run (with --resume: continue up to this step)", 1,
            int64_t{1} << 40);
  flags.Int("stop-after", &stop_after, "stop once this step is reached, keeping the schedule of --steps (0 = off)",
            0, int64_t{1} << 40);
  flags.Int("shards", &shards, "shards per step S (global batch = S x B sequences)", 1, 1 << 16);
  flags.Uint64("seed", &seed, "seed of parameter init and data sampling");
  flags.Float("lr", &lr, "peak learning rate", 1e-8, 10.0);
  flags.Int("warmup", &warmup, "linear learning-rate warm-up steps", 0, int64_t{1} << 40);
  flags.Float("weight-decay", &weight_decay, "AdamW decoupled weight decay (not applied to norm weights)", 0.0, 10.0);
  flags.String("schedule", &schedule, "learning-rate schedule after warm-up: cosine or constant");
  flags.Double("validation-fraction", &validation_fraction, "last fraction of the corpus held out", 0.0, 0.5);
  flags.String("listen", &listen, "address to serve on, host:port (port 0 picks one)");
  flags.Int("min-workers", &min_workers, "lease no shard while fewer workers are connected", 1, 100000);
  flags.Int("lease-timeout-ms", &lease_timeout_ms, "a lease not committed within this many ms is re-issued", 1,
            int64_t{1} << 40);
  flags.Int("shards-per-lease", &shards_per_lease,
            "shards per lease, a power of two: the worker computes them and sends one pre-summed gradient "
            "(less upload per step; parameters stay bit-identical)",
            1, 64);
  flags.String("cluster-token-file", &cluster_token_file, "file holding the cluster token (this or --cluster-token)");
  flags.String("cluster-token", &cluster_token, "the cluster token itself (instead of a file)");
  flags.Int("threads", &threads, "threads of the coordinator's pool (optimizer); 0 = all cores", 0, 4096);
  flags.String("checkpoint-dir", &checkpoint_dir, "folder for checkpoints step-NNNNNNNN.safetensors (empty = none)");
  flags.Int("checkpoint-every", &checkpoint_every, "write a checkpoint every N steps (0 = at the end only)", 0,
            int64_t{1} << 40);
  flags.String("resume", &resume, "checkpoint to resume training from");
  flags.Bool("serve", &serve, "serve Generate + ClusterStatus from --checkpoint; no training");
  flags.String("checkpoint", &checkpoint, "checkpoint to serve (with --serve)");
}

StatusOr<engine::ModelConfig> BuildModelConfig(const CoordinatorOptions& options, int vocab_size) {
  if (options.config != "S" && options.config != "M") {
    return InvalidArgumentError("--config " + options.config + ": expected S or M");
  }
  LANLM_ASSIGN_OR_RETURN(engine::ModelConfig config, engine::NamedConfig(options.config));
  config.vocab_size = vocab_size;
  if (options.dim) config.dim = options.dim;
  if (options.layers) config.n_layers = options.layers;
  if (options.heads) config.n_heads = options.heads;
  if (options.ffn_hidden) config.ffn_hidden = options.ffn_hidden;
  if (options.context) config.context = options.context;
  if (Status s = config.Validate(); !s.ok()) {
    return InvalidArgumentError("model config " + config.ToString() + ": " + s.message());
  }
  return config;
}

StatusOr<engine::TrainOptions> MakeTrainOptions(const CoordinatorOptions& options, int vocab_size) {
  if (options.schedule != "cosine" && options.schedule != "constant") {
    return InvalidArgumentError("--schedule " + options.schedule + ": expected cosine or constant");
  }
  engine::TrainOptions train;
  LANLM_ASSIGN_OR_RETURN(train.model, BuildModelConfig(options, vocab_size));
  train.micro_batch = options.micro_batch > 0 ? options.micro_batch : engine::NamedMicroBatch(options.config);
  train.shards = options.shards;
  train.steps = options.steps;
  train.seed = options.seed;
  train.validation_fraction = options.validation_fraction;
  train.adamw.lr = options.lr;
  train.adamw.warmup_steps = options.warmup;
  train.adamw.weight_decay = options.weight_decay;
  train.adamw.schedule = options.schedule;
  train.adamw.total_steps = options.steps;
  LANLM_RETURN_IF_ERROR(train.Validate());
  return train;
}

StatusOr<RunSetup> PrepareRun(const CoordinatorOptions& options, bool steps_flag_set) {
  if (options.corpus.empty()) return InvalidArgumentError("--corpus FILE is required for training");
  RunSetup setup;
  if (!options.resume.empty()) {
    LANLM_ASSIGN_OR_RETURN(engine::Checkpoint checkpoint, engine::LoadCheckpoint(options.resume));
    LANLM_ASSIGN_OR_RETURN(setup.train, engine::TrainOptions::FromMap(checkpoint.training, checkpoint.config));
    if (steps_flag_set) {
      setup.train.steps = options.steps;
      setup.train.adamw.total_steps = options.steps;
    }
    if (checkpoint.step > setup.train.steps) {
      return InvalidArgumentError("--steps " + std::to_string(setup.train.steps) + " is below the checkpoint's step " +
                                  std::to_string(checkpoint.step));
    }
    LANLM_ASSIGN_OR_RETURN(engine::BpeTokenizer tokenizer, engine::BpeTokenizer::Deserialize(checkpoint.tokenizer));
    setup.tokenizer = std::make_shared<const engine::BpeTokenizer>(std::move(tokenizer));
    if (checkpoint.adam_m.size() != checkpoint.params.size() || checkpoint.adam_v.size() != checkpoint.params.size()) {
      return FailedPreconditionError("checkpoint " + options.resume + " has no optimizer state; cannot resume training");
    }
    setup.state.config = checkpoint.config;
    setup.state.params = std::move(checkpoint.params);
    setup.state.adam_m = std::move(checkpoint.adam_m);
    setup.state.adam_v = std::move(checkpoint.adam_v);
    setup.state.step = checkpoint.step;
  } else {
    LANLM_RETURN_IF_ERROR(BuildModelConfig(options, 1024).status());  // fail fast on a bad config
    if (!options.tokenizer.empty()) {
      LANLM_ASSIGN_OR_RETURN(engine::BpeTokenizer tokenizer, engine::BpeTokenizer::LoadFromFile(options.tokenizer));
      setup.tokenizer = std::make_shared<const engine::BpeTokenizer>(std::move(tokenizer));
    } else {
      LANLM_ASSIGN_OR_RETURN(std::string text, engine::ReadTextFile(options.corpus));
      const int vocab = options.vocab_size > 0 ? options.vocab_size : engine::NamedConfig(options.config)->vocab_size;
      LANLM_ASSIGN_OR_RETURN(engine::BpeTokenizer tokenizer, engine::BpeTokenizer::Train(text, vocab));
      setup.tokenizer = std::make_shared<const engine::BpeTokenizer>(std::move(tokenizer));
    }
    LANLM_ASSIGN_OR_RETURN(setup.train, MakeTrainOptions(options, setup.tokenizer->vocab_size()));
    setup.state = engine::TrainingState::Init(setup.train.model, setup.train.seed, setup.train.init_std);
  }
  if (setup.tokenizer->vocab_size() > setup.train.model.vocab_size) {
    return InvalidArgumentError("tokenizer vocabulary = " + std::to_string(setup.tokenizer->vocab_size()) +
                                " exceeds the model's V = " + std::to_string(setup.train.model.vocab_size));
  }
  LANLM_ASSIGN_OR_RETURN(engine::Corpus corpus,
                         engine::LoadCorpus(options.corpus, *setup.tokenizer, setup.train.validation_fraction));
  setup.corpus_tokens = static_cast<int64_t>(corpus.train.size() + corpus.validation.size());
  if (static_cast<int64_t>(corpus.train.size()) < setup.train.model.context + 2) {
    return FailedPreconditionError("corpus training split has " + std::to_string(corpus.train.size()) +
                                   " tokens, fewer than T + 2 = " + std::to_string(setup.train.model.context + 2));
  }
  setup.train_tokens = std::move(corpus.train);
  return setup;
}

}  // namespace lanlm::coordinator
