// The command-line flags that `lanlm train` and lanlm-coordinator share to choose the model and
// the training run (named config and overrides, batch, steps, optimizer, seed, validation
// split): their values, their registration on a FlagSet, and their checked translation into a
// ModelConfig and TrainOptions. Not the flags of one program (files, threads, cluster).
#pragma once

#include <cstdint>
#include <string>

#include "engine/cli/flags.h"
#include "engine/base/status.h"
#include "engine/model/model_config.h"
#include "engine/train/trainer.h"

namespace lanlm::engine {

// The values of the shared flags, defaults included.
struct TrainFlags {
  std::string corpus;        // --corpus: UTF-8 text to train on
  std::string tokenizer;     // --tokenizer: tokenizer file; empty = learn one of --vocab-size from the corpus
  std::string resume;        // --resume: checkpoint to continue from
  std::string config = "S";  // --config: named config S or M; the model's V is the tokenizer's size
  int vocab_size = 0;        // --vocab-size: tokenizer training vocabulary; 0 = the config's V
  int dim = 0, layers = 0, heads = 0, ffn_hidden = 0, context = 0;  // overrides; 0 = the config's
  int micro_batch = 0;                                              // --micro-batch B; 0 = the named config's
  int64_t steps = 1000;
  int64_t stop_after = 0;  // stop at this step keeping the schedule of steps; 0 = run to steps
  int shards = 4;
  uint64_t seed = 1;
  float lr = 1e-3f;
  int64_t warmup = 100;
  float weight_decay = 0.01f;
  std::string schedule = "cosine";
  double validation_fraction = 0.05;
  int64_t eval_every = 100;   // validation loss every N steps and at the end (0 = only at the end)
  int64_t eval_windows = 16;  // windows of T+1 validation tokens per evaluation (0 = the whole split)
  std::string precision = "fp32";    // --precision: arithmetic of the large matmuls (fp32 or bf16)
  bool allow_corpus_change = false;  // --allow-corpus-change: resume on a text other than the checkpoint's
  bool override_checkpoint = false;  // --override-checkpoint: resume with other optimizer flags (lr, ...)
};

// Registers every shared flag bound to *values (its current value is the default in --help).
void RegisterTrainFlags(FlagSet& flags, TrainFlags* values);

// Holds values set in code to what parsing accepts: INVALID_ARGUMENT naming the flag, the value
// and the allowed range or choices ("--shards=0: expected an integer in [1, 65536]",
// "--config XL: expected S or M").
Status ValidateTrainFlags(const TrainFlags& values);

// The named config with the overrides applied and V = vocab_size; INVALID_ARGUMENT for bad
// flags or a config that does not validate.
StatusOr<ModelConfig> ModelConfigFromFlags(const TrainFlags& values, int vocab_size);

// The TrainOptions of a fresh run of a model with vocabulary vocab_size (adamw.total_steps =
// steps), validated.
StatusOr<TrainOptions> TrainOptionsFromFlags(const TrainFlags& values, int vocab_size);

// --precision's value: INVALID_ARGUMENT for a name other than fp32/bf16, FAILED_PRECONDITION for
// bf16 on a CPU that cannot compute its contract exactly.
Status ParsePrecisionFlag(const std::string& value, Precision* out);

// The vocabulary to train a tokenizer to: --vocab-size, or the named config's V. Needs
// validated values.
int TokenizerVocabSize(const TrainFlags& values);

// On resume the checkpoint's options win, except that --steps, when given (steps_set), moves
// the target step and the schedule's end with it. INVALID_ARGUMENT when the target is below
// checkpoint_step.
Status ApplyResumeSteps(const TrainFlags& values, bool steps_set, int64_t checkpoint_step, TrainOptions* options);

// On resume: FAILED_PRECONDITION when the checkpoint records the hash of the corpus it was
// trained on (checkpoint_hash != 0) and --corpus (corpus_path, tokenized: corpus_hash) is a
// different text, unless --allow-corpus-change. Continuing on other text is a different run,
// not a resume: its data order and its fingerprint would differ silently.
Status CheckResumeCorpus(const TrainFlags& values, uint64_t checkpoint_hash, uint64_t corpus_hash,
                         const std::string& corpus_path);

}  // namespace lanlm::engine
