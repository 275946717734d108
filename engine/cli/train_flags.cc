// The shared training flags: one list of names, help texts and allowed values, walked once to
// register them on a FlagSet and once to check values set in code; see train_flags.h.
#include "engine/cli/train_flags.h"

#include <initializer_list>
#include <sstream>

#include "engine/base/check.h"
#include "engine/base/float_bits.h"
#include "engine/base/hash.h"
#include "engine/ops/matmul.h"

namespace lanlm::engine {
namespace {

constexpr int64_t kMaxSteps = int64_t{1} << 40;
constexpr int kMaxBatch = 1 << 16;  // shards S and micro-batch B

// Calls the visitor once per shared flag with its name, target, help and allowed values:
// Choice (a string from a list), Int (int or int64_t), Uint64, Float, Double.
template <typename Values, typename Visitor>
void VisitTrainFlags(Values& t, Visitor& v) {
  v.Choice("config", &t.config, "named model config: S or M (DESIGN.md §2); V comes from the tokenizer", {"S", "M"});
  v.Int("vocab-size", &t.vocab_size, "train a BPE tokenizer of this size on the corpus (0 = the config's V)", 0,
        kMaxVocab);
  v.Int("dim", &t.dim, "override the config's model dim C (0 = keep)", 0, kMaxDim);
  v.Int("layers", &t.layers, "override the config's layer count L (0 = keep)", 0, kMaxLayers);
  v.Int("heads", &t.heads, "override the config's head count NH (0 = keep)", 0, kMaxDim);
  v.Int("ffn-hidden", &t.ffn_hidden, "override the config's feed-forward hidden size F (0 = keep)", 0, 4 * kMaxDim);
  v.Int("context", &t.context, "override the config's context length T (0 = keep)", 0, kMaxContext);
  v.Int("micro-batch", &t.micro_batch, "sequences per shard B (0 = the config's, 8 for S and M)", 0, kMaxBatch);
  v.Int("steps", &t.steps, "total optimizer steps of the run (with --resume: continue up to this step)", 1, kMaxSteps);
  v.Int("stop-after", &t.stop_after,
        "stop once this step is reached, keeping the schedule of --steps (0 = run to --steps)", 0, kMaxSteps);
  v.Int("shards", &t.shards, "shards per step S (global batch = S x B sequences)", 1, kMaxBatch);
  v.Uint64("seed", &t.seed, "seed of parameter init and data sampling");
  v.Float("lr", &t.lr, "peak learning rate", 1e-8, 10.0);
  v.Int("warmup", &t.warmup, "linear learning-rate warm-up steps", 0, kMaxSteps);
  v.Float("weight-decay", &t.weight_decay, "AdamW decoupled weight decay (not applied to norm weights)", 0.0, 10.0);
  v.Choice("schedule", &t.schedule, "learning-rate schedule after warm-up: cosine (to 0.1 x lr at --steps) or constant",
           {"cosine", "constant"});
  v.Double("validation-fraction", &t.validation_fraction, "last fraction of the corpus tokens held out for validation",
           0.0, 0.5);
  v.Int("eval-every", &t.eval_every, "validation loss every N steps and at the end (0 = only at the end)", 0,
        kMaxSteps);
  v.Int("eval-windows", &t.eval_windows, "validation windows of T+1 tokens per evaluation (0 = the whole split)", 0,
        kMaxSteps);
  v.Choice("precision", &t.precision,
           "arithmetic of the large matmuls: fp32, or bf16 (inputs rounded to bf16, fp32 accumulation; "
           "docs/TRAINING.md)",
           {"fp32", "bf16"});
}

using Choices = std::initializer_list<const char*>;

// Registers each flag on a FlagSet.
class Registrar {
 public:
  explicit Registrar(FlagSet& flags) : flags_(flags) {}

  void Choice(const std::string& name, std::string* target, const char* help, Choices) {
    flags_.String(name, target, help);
  }
  template <typename T>
  void Int(const std::string& name, T* target, const char* help, int64_t min, int64_t max) {
    flags_.Int(name, target, help, static_cast<T>(min), static_cast<T>(max));
  }
  void Uint64(const std::string& name, uint64_t* target, const char* help) { flags_.Uint64(name, target, help); }
  void Float(const std::string& name, float* target, const char* help, double min, double max) {
    flags_.Float(name, target, help, min, max);
  }
  void Double(const std::string& name, double* target, const char* help, double min, double max) {
    flags_.Double(name, target, help, min, max);
  }

 private:
  FlagSet& flags_;
};

std::string FormatNumber(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}

// Checks each value against what its flag accepts; keeps the first error, worded as FlagSet
// words a bad value on the command line.
class Checker {
 public:
  void Choice(const std::string& name, const std::string* value, const char*, Choices choices) {
    std::string expected;
    for (const char* c : choices) {
      if (*value == c) return;
      expected += (expected.empty() ? "" : " or ") + std::string(c);
    }
    Fail(InvalidArgumentError("--" + name + " " + *value + ": expected " + expected));
  }
  template <typename T>
  void Int(const std::string& name, const T* value, const char*, int64_t min, int64_t max) {
    if (*value < min || *value > max) {
      Fail(Bad(name, std::to_string(*value),
               "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]"));
    }
  }
  void Uint64(const std::string&, const uint64_t*, const char*) {}  // every value is allowed
  void Float(const std::string& name, const float* value, const char*, double min, double max) {
    // In float, as the parsed value is stored: 1e-8f passes a minimum of 1e-8.
    if (!IsFiniteBits(*value) || *value < static_cast<float>(min) || *value > static_cast<float>(max)) {
      Fail(Bad(name, FormatNumber(*value), NumberRange(min, max)));
    }
  }
  void Double(const std::string& name, const double* value, const char*, double min, double max) {
    // -ffast-math folds NaN tests on doubles; a NaN or infinite double stays one as a float.
    if (!IsFiniteBits(static_cast<float>(*value)) || *value < min || *value > max) {
      Fail(Bad(name, FormatNumber(*value), NumberRange(min, max)));
    }
  }
  const Status& status() const { return status_; }

 private:
  static std::string NumberRange(double min, double max) {
    return "a number in [" + FormatNumber(min) + ", " + FormatNumber(max) + "]";
  }
  static Status Bad(const std::string& name, const std::string& value, const std::string& expected) {
    return InvalidArgumentError("--" + name + "=" + value + ": expected " + expected);
  }
  void Fail(Status s) {
    if (status_.ok()) status_ = std::move(s);
  }
  Status status_;
};

}  // namespace

void RegisterTrainFlags(FlagSet& flags, TrainFlags* values) {
  flags.String("corpus", &values->corpus, "UTF-8 text file to train on (required)");
  flags.String("tokenizer", &values->tokenizer,
               "use this tokenizer file (lanlm tokenizer train) instead of learning one from the corpus");
  Registrar registrar(flags);
  VisitTrainFlags(*values, registrar);
  flags.String("resume", &values->resume,
               "continue from this checkpoint: its model, tokenizer, seed and options; a flag that contradicts "
               "it is an error");
  flags.Bool("allow-corpus-change", &values->allow_corpus_change,
             "with --resume: continue even if --corpus is not the text the checkpoint was trained on");
  flags.Bool("override-checkpoint", &values->override_checkpoint,
             "with --resume: --lr, --warmup, --weight-decay and --schedule replace the checkpoint's values "
             "instead of contradicting them");
}

Status ValidateTrainFlags(const TrainFlags& values) {
  Checker checker;
  VisitTrainFlags(values, checker);
  return checker.status();
}

StatusOr<ModelConfig> ModelConfigFromFlags(const TrainFlags& values, int vocab_size) {
  LANLM_RETURN_IF_ERROR(ValidateTrainFlags(values));
  LANLM_ASSIGN_OR_RETURN(ModelConfig config, NamedConfig(values.config));
  config.vocab_size = vocab_size;
  if (values.dim) config.dim = values.dim;
  if (values.layers) config.n_layers = values.layers;
  if (values.heads) config.n_heads = values.heads;
  if (values.ffn_hidden) config.ffn_hidden = values.ffn_hidden;
  if (values.context) config.context = values.context;
  if (Status s = config.Validate(); !s.ok()) {
    return InvalidArgumentError("model config " + config.ToString() + ": " + s.message());
  }
  return config;
}

Status ParsePrecisionFlag(const std::string& value, Precision* out) {
  if (!ParsePrecision(value, out)) {
    return InvalidArgumentError("--precision " + value + " is not one of: fp32, bf16");
  }
  if (*out == Precision::kBf16 && !Bf16Supported()) {
    return FailedPreconditionError(
        "--precision bf16 needs a CPU with AVX512_BF16, AVX-512F or AVX2 + FMA to compute its contract exactly; "
        "this one has none of them (use --precision fp32)");
  }
  return OkStatus();
}

StatusOr<TrainOptions> TrainOptionsFromFlags(const TrainFlags& values, int vocab_size) {
  TrainOptions o;
  LANLM_ASSIGN_OR_RETURN(o.model, ModelConfigFromFlags(values, vocab_size));
  o.micro_batch = values.micro_batch > 0 ? values.micro_batch : NamedMicroBatch(values.config);
  o.shards = values.shards;
  o.steps = values.steps;
  o.seed = values.seed;
  o.validation_fraction = values.validation_fraction;
  LANLM_RETURN_IF_ERROR(ParsePrecisionFlag(values.precision, &o.precision));
  o.adamw.lr = values.lr;
  o.adamw.warmup_steps = values.warmup;
  o.adamw.weight_decay = values.weight_decay;
  o.adamw.schedule = values.schedule;
  o.adamw.total_steps = values.steps;
  LANLM_RETURN_IF_ERROR(o.Validate());
  return o;
}

int TokenizerVocabSize(const TrainFlags& values) {
  if (values.vocab_size > 0) return values.vocab_size;
  StatusOr<ModelConfig> named = NamedConfig(values.config);
  LANLM_CHECK(named.ok(), named.status().ToString());
  return named->vocab_size;
}

Status ApplyResumeSteps(const TrainFlags& values, bool steps_set, int64_t checkpoint_step, TrainOptions* options) {
  if (steps_set) {
    options->steps = values.steps;
    options->adamw.total_steps = values.steps;
  }
  if (checkpoint_step > options->steps) {
    return InvalidArgumentError("--steps " + std::to_string(options->steps) + " is below the checkpoint's step " +
                                std::to_string(checkpoint_step));
  }
  return OkStatus();
}

Status CheckResumeCorpus(const TrainFlags& values, uint64_t checkpoint_hash, uint64_t corpus_hash,
                         const std::string& corpus_path) {
  if (checkpoint_hash == 0 || checkpoint_hash == corpus_hash || values.allow_corpus_change) return OkStatus();
  return FailedPreconditionError("--corpus " + corpus_path + " tokenizes to corpus hash " + Hex16(corpus_hash) +
                                 ", but the checkpoint was trained on corpus hash " + Hex16(checkpoint_hash) +
                                 "; resuming on another text is a different run (pass --allow-corpus-change to "
                                 "train on it anyway)");
}

}  // namespace lanlm::engine
