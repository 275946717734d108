// engine/cli/ owns what the programs share on their command lines: the flag parser, the training flags,
// and (this file) the training core shared by `lanlm train`, `lanlm-coordinator --local` and the distributed
// coordinator: from the shared training flags (train_flags.h) to what a run starts from
// (options, tokenizer, state, corpus), fresh or resumed, under one resume rule. The step loops
// differ (engine LocalTrainer in-process, coordinator TrainingRun over workers); where a run
// starts and how it is saved (engine/train/training_checkpoint.h) do not.
//
// The resume rule: the checkpoint decides the model, tokenizer, seed, shards, micro-batch,
// validation split and optimizer; a flag given on the command line that contradicts it is
// INVALID_ARGUMENT naming the flag's value and the checkpoint's. Two flags may change a
// resumed run on purpose: --steps (the target step and the schedule's end move with it) and,
// with --override-checkpoint, the optimizer flags (--lr, --warmup, --weight-decay,
// --schedule). --allow-corpus-change lets it continue on another text.
#pragma once

#include <memory>

#include "engine/base/status.h"
#include "engine/cli/flags.h"
#include "engine/cli/train_flags.h"
#include "engine/data/corpus.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/train/trainer.h"

namespace lanlm::engine {

// Where a run starts: options, tokenizer (V = its size), state at step 0 or the checkpoint's.
struct TrainSpec {
  TrainOptions train;
  std::shared_ptr<const BpeTokenizer> tokenizer;
  TrainingState state;
  bool resumed = false;
  uint64_t checkpoint_corpus_hash = 0;  // on resume: the text the checkpoint was trained on (0 = unknown)
  double tokenizer_seconds = -1.0;      // >= 0: a tokenizer was learned from the corpus, in this time
  std::string run_id;                   // engine::NewRunId(), or the resumed checkpoint's (kept across resume)
  bool unchecked_table = false;         // on resume: the checkpoint predates tensor-table checksums
};

// Low-communication rounds asked for (the coordinator's --local-steps, --outer-lr,
// --outer-momentum); local_steps = 0 is synchronous training (`lanlm train`, --local).
struct RoundFlags {
  int local_steps = 0;
  float outer_lr = 0.7f;
  float outer_momentum = 0.9f;
};

// From flags (given: the names on the command line) to a TrainSpec: a fresh run (tokenizer from
// --tokenizer or learned from --corpus; parameters initialised from --seed), or --resume under
// the rule above. INVALID_ARGUMENT for flags (bad values, --tokenizer with --vocab-size,
// contradictions); the file's error for an unreadable tokenizer, corpus or checkpoint.
// With rounds, the state carries a zero outer momentum (fresh) or the checkpoint's, under
// ApplyResumeRounds.
StatusOr<TrainSpec> PrepareTrainSpec(const TrainFlags& values, const GivenFlags& given, const RoundFlags& rounds = {});

// The resume rule for rounds: a checkpoint of a --local-steps run continues only with the same
// rounds (H, outer lr and momentum), its outer momentum with it, so the resumed run equals an
// uninterrupted one; anything else is INVALID_ARGUMENT naming both, unless
// --override-checkpoint, which drops the recorded momentum. A synchronous checkpoint may start
// rounds (with zero momentum). Sets state's outer_m and outer_settings for the run.
Status ApplyResumeRounds(const TrainFlags& values, const RoundFlags& rounds, TrainingState* state);

// Loads --corpus with spec's tokenizer and validation split. FAILED_PRECONDITION when it is not
// the checkpoint's text (unless --allow-corpus-change) or its training split is shorter than
// T + 2 tokens.
StatusOr<Corpus> LoadTrainCorpus(const TrainFlags& values, const TrainSpec& spec);

// The checks of the resume rule alone: values against a checkpoint's options, model config and
// tokenizer; with --override-checkpoint the optimizer flags given replace *options' values.
// --steps is not checked here (ApplyResumeSteps).
Status ApplyResumeFlags(const TrainFlags& values, const GivenFlags& given, const BpeTokenizer& checkpoint_tokenizer,
                        uint64_t checkpoint_seed, TrainOptions* options);

}  // namespace lanlm::engine
