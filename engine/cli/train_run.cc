// The training core: fresh and resumed run specs under one resume rule; see train_run.h.
#include "engine/cli/train_run.h"

#include <chrono>
#include <optional>
#include <utility>

#include "engine/base/hash.h"
#include "engine/base/number_text.h"
#include "engine/io/checkpoint.h"
#include "engine/train/local_steps.h"
#include "engine/train/training_checkpoint.h"

namespace lanlm::engine {
namespace {

// A float shown as typed: 0.01, not 0.00999999978.
std::string Shown(double x) { return NumberText(x, 7); }

std::string Shown(int64_t x) { return std::to_string(x); }
std::string Shown(uint64_t x) { return std::to_string(x); }
std::string Shown(int x) { return std::to_string(x); }
std::string Shown(const std::string& x) { return x; }

// Checks one flag against the checkpoint's value (named `key` in its metadata). With
// `overridable` and --override-checkpoint, the flag's value replaces *checkpoint_value.
template <typename T, typename U>
Status CheckFlag(const TrainFlags& values, const GivenFlags& given, const std::string& flag, const T& flag_value,
                 const std::string& key, U* checkpoint_value, bool overridable) {
  if (!given.count(flag) || flag_value == *checkpoint_value) return OkStatus();
  if (overridable && values.override_checkpoint) {
    *checkpoint_value = static_cast<U>(flag_value);
    return OkStatus();
  }
  return InvalidArgumentError("--" + flag + " " + Shown(flag_value) + " contradicts the checkpoint's " + key + " " +
                              Shown(*checkpoint_value) +
                              (overridable ? " (drop the flag to keep the checkpoint's value, or pass "
                                             "--override-checkpoint to use it)"
                                           : " (drop the flag to keep the checkpoint's value)"));
}

Status CheckModelFlags(const TrainFlags& values, const GivenFlags& given, const ModelConfig& checkpoint) {
  for (const char* flag : {"config", "dim", "layers", "heads", "ffn-hidden", "context"}) {
    if (!given.count(flag)) continue;
    LANLM_ASSIGN_OR_RETURN(ModelConfig wanted, ModelConfigFromFlags(values, checkpoint.vocab_size));
    if (wanted == checkpoint) return OkStatus();
    return InvalidArgumentError("model flags give " + wanted.ToString() + ", which contradicts the checkpoint's " +
                                checkpoint.ToString());
  }
  return OkStatus();
}

Status CheckTokenizerFlags(const TrainFlags& values, const GivenFlags& given, const BpeTokenizer& checkpoint,
                           int vocab) {
  int checkpoint_vocab = vocab;
  LANLM_RETURN_IF_ERROR(
      CheckFlag(values, given, "vocab-size", values.vocab_size, "vocab size", &checkpoint_vocab, false));
  if (!given.count("tokenizer")) return OkStatus();
  LANLM_ASSIGN_OR_RETURN(BpeTokenizer flag_tokenizer, BpeTokenizer::LoadFromFile(values.tokenizer));
  if (flag_tokenizer.Serialize() == checkpoint.Serialize()) return OkStatus();
  return InvalidArgumentError("--tokenizer " + values.tokenizer + " (" + std::to_string(flag_tokenizer.vocab_size()) +
                              " tokens, hash " + Hex16(flag_tokenizer.Hash()) +
                              ") contradicts the checkpoint's tokenizer (" + std::to_string(vocab) +
                              " tokens, hash " + Hex16(checkpoint.Hash()) + ")");
}

StatusOr<TrainSpec> PrepareResume(const TrainFlags& values, const GivenFlags& given, const RoundFlags& rounds) {
  LANLM_ASSIGN_OR_RETURN(Checkpoint checkpoint, LoadCheckpoint(values.resume));
  LANLM_ASSIGN_OR_RETURN(ResumePoint point, ResumePointFromCheckpoint(std::move(checkpoint), values.resume));
  LANLM_RETURN_IF_ERROR(ApplyResumeFlags(values, given, point.tokenizer, point.seed, &point.options));
  LANLM_RETURN_IF_ERROR(ApplyResumeSteps(values, given.count("steps") > 0, point.state.step, &point.options));
  LANLM_RETURN_IF_ERROR(point.options.Validate());
  LANLM_RETURN_IF_ERROR(ApplyResumeRounds(values, rounds, &point.state));
  TrainSpec spec;
  spec.train = std::move(point.options);
  spec.tokenizer = std::make_shared<const BpeTokenizer>(std::move(point.tokenizer));
  spec.state = std::move(point.state);
  spec.resumed = true;
  spec.checkpoint_corpus_hash = point.corpus_hash;
  // A checkpoint from before run ids continues as a new run: workers then fetch its
  // parameters instead of trusting any cache.
  spec.run_id = point.run_id.empty() ? NewRunId() : point.run_id;
  spec.unchecked_table = !point.table_checksummed;
  return spec;
}

StatusOr<TrainSpec> PrepareFresh(const TrainFlags& values, const GivenFlags& given, const RoundFlags& rounds) {
  TrainSpec spec;
  std::optional<BpeTokenizer> tokenizer;
  if (!values.tokenizer.empty()) {
    if (given.count("vocab-size")) return InvalidArgumentError("give --tokenizer or --vocab-size, not both");
    LANLM_ASSIGN_OR_RETURN(tokenizer, BpeTokenizer::LoadFromFile(values.tokenizer));
  } else {
    LANLM_RETURN_IF_ERROR(ModelConfigFromFlags(values, 1024).status());  // bad flags fail before the slow part
    LANLM_ASSIGN_OR_RETURN(std::string text, ReadTextFile(values.corpus));
    const auto start = std::chrono::steady_clock::now();
    LANLM_ASSIGN_OR_RETURN(tokenizer, BpeTokenizer::Train(text, TokenizerVocabSize(values)));
    spec.tokenizer_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  LANLM_ASSIGN_OR_RETURN(spec.train, TrainOptionsFromFlags(values, tokenizer->vocab_size()));
  spec.state = TrainingState::Init(spec.train.model, spec.train.seed, spec.train.init_std);
  LANLM_RETURN_IF_ERROR(ApplyResumeRounds(values, rounds, &spec.state));
  spec.tokenizer = std::make_shared<const BpeTokenizer>(std::move(*tokenizer));
  spec.run_id = NewRunId();
  return spec;
}

}  // namespace

Status ApplyResumeFlags(const TrainFlags& values, const GivenFlags& given, const BpeTokenizer& checkpoint_tokenizer,
                        uint64_t checkpoint_seed, TrainOptions* o) {
  LANLM_RETURN_IF_ERROR(CheckModelFlags(values, given, o->model));
  LANLM_RETURN_IF_ERROR(CheckTokenizerFlags(values, given, checkpoint_tokenizer, o->model.vocab_size));
  LANLM_RETURN_IF_ERROR(CheckFlag(values, given, "seed", values.seed, "seed", &checkpoint_seed, false));
  LANLM_RETURN_IF_ERROR(CheckFlag(values, given, "shards", values.shards, "shards", &o->shards, false));
  LANLM_RETURN_IF_ERROR(
      CheckFlag(values, given, "micro-batch", values.micro_batch, "micro_batch", &o->micro_batch, false));
  LANLM_RETURN_IF_ERROR(CheckFlag(values, given, "validation-fraction", values.validation_fraction,
                                  "validation_fraction", &o->validation_fraction, false));
  LANLM_RETURN_IF_ERROR(CheckFlag(values, given, "lr", values.lr, "lr", &o->adamw.lr, true));
  LANLM_RETURN_IF_ERROR(
      CheckFlag(values, given, "warmup", values.warmup, "warmup_steps", &o->adamw.warmup_steps, true));
  LANLM_RETURN_IF_ERROR(CheckFlag(values, given, "weight-decay", values.weight_decay, "weight_decay",
                                  &o->adamw.weight_decay, true));
  LANLM_RETURN_IF_ERROR(
      CheckFlag(values, given, "schedule", values.schedule, "schedule", &o->adamw.schedule, true));
  // Overridable: a bf16 run may be continued in fp32 (or the reverse) on purpose.
  std::string precision = PrecisionName(o->precision);
  LANLM_RETURN_IF_ERROR(CheckFlag(values, given, "precision", values.precision, "precision", &precision, true));
  return ParsePrecisionFlag(precision, &o->precision);
}

Status ApplyResumeRounds(const TrainFlags& values, const RoundFlags& rounds, TrainingState* state) {
  const auto asked = OuterRoundSettings(rounds.local_steps, rounds.outer_lr, rounds.outer_momentum);
  const bool keep = state->outer_settings == asked || state->outer_settings.empty();
  if (!keep && !values.override_checkpoint) {
    return InvalidArgumentError("checkpoint " + values.resume + " was trained in rounds of " +
                                OuterRoundFlags(state->outer_settings) + "; this run asks for " +
                                OuterRoundFlags(asked) +
                                ": a resumed run continues the checkpoint's rounds and outer momentum (pass "
                                "--override-checkpoint to start the new setting without the recorded momentum)");
  }
  if (!keep || state->outer_m.size() != state->params.size()) state->outer_m.clear();
  state->outer_settings = asked;
  if (asked.empty()) {
    state->outer_m.clear();
  } else if (state->outer_m.empty()) {
    state->outer_m.assign(state->params.size(), 0.0f);  // rounds start with zero momentum
  }
  return OkStatus();
}

StatusOr<TrainSpec> PrepareTrainSpec(const TrainFlags& values, const GivenFlags& given, const RoundFlags& rounds) {
  if (values.corpus.empty()) return InvalidArgumentError("--corpus FILE is required for training");
  LANLM_RETURN_IF_ERROR(ValidateTrainFlags(values));
  return values.resume.empty() ? PrepareFresh(values, given, rounds) : PrepareResume(values, given, rounds);
}

StatusOr<Corpus> LoadTrainCorpus(const TrainFlags& values, const TrainSpec& spec) {
  LANLM_ASSIGN_OR_RETURN(Corpus corpus, LoadCorpus(values.corpus, *spec.tokenizer, spec.train.validation_fraction));
  LANLM_RETURN_IF_ERROR(CheckResumeCorpus(values, spec.checkpoint_corpus_hash, corpus.hash, values.corpus));
  const int T = spec.train.model.context;
  if (static_cast<int64_t>(corpus.train.size()) < T + 2) {
    return FailedPreconditionError("corpus " + values.corpus + " has " + std::to_string(corpus.train.size()) +
                                   " training tokens, fewer than T + 2 = " + std::to_string(T + 2) +
                                   " (use a longer text or a smaller --context)");
  }
  return corpus;
}

}  // namespace lanlm::engine
