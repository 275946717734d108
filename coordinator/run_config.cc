// Coordinator flags and run preparation; see run_config.h.
#include "coordinator/run_config.h"

#include <sstream>

#include "engine/checkpoint.h"

namespace lanlm::coordinator {

void CoordinatorOptions::Register(FlagSet& flags) {
  flags.String("corpus", &corpus, "UTF-8 training text");
  flags.String("config", &config, "model config: S, M, INF15M or V=..,C=..,L=..,NH=..,F=..,T=..");
  flags.String("tokenizer", &tokenizer, "tokenizer file (default: train one on the corpus)");
  flags.Int("vocab-size", &vocab_size, "vocabulary when training the tokenizer (0 = the config's V)", 0, engine::kMaxVocab);
  flags.Int("micro-batch", &micro_batch, "sequences per shard B (0 = the config's)", 0, 4096);
  flags.Int("steps", &steps, "optimizer steps of the run", 1, int64_t{1} << 40);
  flags.Int("shards", &shards, "shards per step S (global batch = S x B sequences)", 1, 65536);
  flags.Uint64("seed", &seed, "seed of parameter init and data sampling");
  flags.Float("lr", &lr, "peak learning rate", 0.0, 10.0);
  flags.Int("warmup", &warmup, "linear warm-up steps", 0, int64_t{1} << 40);
  flags.String("listen", &listen, "address to serve on, host:port (port 0 picks one)");
  flags.Int("min-workers", &min_workers, "lease no shard while fewer workers are connected", 1, 100000);
  flags.Int("lease-timeout-ms", &lease_timeout_ms, "a lease not committed within this many ms is re-issued", 1,
            int64_t{1} << 40);
  flags.String("cluster-token-file", &cluster_token_file, "file holding the cluster token (required)");
  flags.String("cluster-token", &cluster_token, "the cluster token itself (instead of a file)");
  flags.Int("threads", &threads, "threads of the coordinator's pool (optimizer); 0 = all cores", 0, 4096);
  flags.String("checkpoint-dir", &checkpoint_dir, "folder for checkpoints (empty = none)");
  flags.Int("checkpoint-every", &checkpoint_every, "write a checkpoint every N steps (0 = at the end only)", 0,
            int64_t{1} << 40);
  flags.String("resume", &resume, "checkpoint to resume training from");
  flags.Bool("serve", &serve, "serve Generate + ClusterStatus from --checkpoint; no training");
  flags.String("checkpoint", &checkpoint, "checkpoint to serve (with --serve)");
}

StatusOr<engine::ModelConfig> ParseModelConfig(const std::string& spec, int* micro_batch) {
  if (spec.find('=') == std::string::npos) {
    LANLM_ASSIGN_OR_RETURN(engine::ModelConfig config, engine::NamedConfig(spec));
    *micro_batch = engine::NamedMicroBatch(spec);
    return config;
  }
  LANLM_ASSIGN_OR_RETURN(engine::ModelConfig config, engine::NamedConfig("S"));
  *micro_batch = 8;
  std::stringstream in(spec);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) return InvalidArgumentError("config item '" + item + "' is not KEY=VALUE");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    char* end = nullptr;
    const long v = std::strtol(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || v <= 0 || v > (1L << 24)) {
      return InvalidArgumentError("config " + key + "=" + value + " is not a positive integer");
    }
    const int x = static_cast<int>(v);
    if (key == "V") config.vocab_size = x;
    else if (key == "C") config.dim = x;
    else if (key == "L") config.n_layers = x;
    else if (key == "NH") config.n_heads = x;
    else if (key == "F") config.ffn_hidden = x;
    else if (key == "T") config.context = x;
    else return InvalidArgumentError("unknown config key '" + key + "' (expected V, C, L, NH, F or T)");
  }
  LANLM_RETURN_IF_ERROR(config.Validate());
  return config;
}

StatusOr<engine::TrainOptions> MakeTrainOptions(const CoordinatorOptions& options) {
  engine::TrainOptions train;
  int named_batch = 8;
  LANLM_ASSIGN_OR_RETURN(train.model, ParseModelConfig(options.config, &named_batch));
  train.micro_batch = options.micro_batch > 0 ? options.micro_batch : named_batch;
  train.shards = options.shards;
  train.steps = options.steps;
  train.seed = options.seed;
  train.adamw.lr = options.lr;
  train.adamw.warmup_steps = options.warmup;
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
    if (steps_flag_set) setup.train.steps = options.steps;
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
    LANLM_ASSIGN_OR_RETURN(setup.train, MakeTrainOptions(options));
    if (!options.tokenizer.empty()) {
      LANLM_ASSIGN_OR_RETURN(engine::BpeTokenizer tokenizer, engine::BpeTokenizer::LoadFromFile(options.tokenizer));
      setup.tokenizer = std::make_shared<const engine::BpeTokenizer>(std::move(tokenizer));
    } else {
      LANLM_ASSIGN_OR_RETURN(std::string text, engine::ReadTextFile(options.corpus));
      const int vocab = options.vocab_size > 0 ? options.vocab_size : setup.train.model.vocab_size;
      LANLM_ASSIGN_OR_RETURN(engine::BpeTokenizer tokenizer, engine::BpeTokenizer::Train(text, vocab));
      setup.tokenizer = std::make_shared<const engine::BpeTokenizer>(std::move(tokenizer));
    }
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
