// `lanlm train`: trains a model on a text file in this one process (engine LocalTrainer), with
// progress output, a loss CSV, periodic and final checkpoints, resume, and a graceful stop on
// Ctrl-C. The same steps as a cluster run (DESIGN.md §3), so fingerprints are comparable.
// Not the distributed trainer: that is lanlm-coordinator.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <optional>
#include <utility>

#include "client/offline_common.h"
#include "engine/io/checkpoint.h"
#include "engine/data/corpus.h"
#include "engine/base/thread_pool.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/cli/train_flags.h"
#include "engine/train/trainer.h"

namespace lanlm::client {
namespace {

using engine::BpeTokenizer;
using engine::ModelConfig;
using engine::TrainingState;
using engine::TrainOptions;

constexpr const char* kCommand = "train";

// The shared training flags (engine/cli/train_flags.h) and this command's own.
struct TrainCommandFlags : engine::TrainFlags {
  std::string corpus;
  std::string tokenizer;
  int threads = engine::DefaultThreadCount();
  std::string out;
  std::string resume;
  int64_t eval_every = 100;
  int64_t eval_windows = 16;
  int64_t checkpoint_every = 0;
  int64_t log_every = 10;
  std::string loss_csv;
};

// Set by SIGINT/SIGTERM; the loop finishes the current step, saves and exits 0.
std::atomic<bool> g_stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void OnStopSignal(int) { g_stop_requested.store(true, std::memory_order_relaxed); }

// Installs the stop handler for SIGINT and SIGTERM and restores the previous ones on exit.
// SA_RESETHAND: a second Ctrl-C kills the process the usual way.
class StopSignals {
 public:
  StopSignals() {
    g_stop_requested.store(false);
    struct sigaction sa {};
    sa.sa_handler = OnStopSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

void RegisterFlags(FlagSet& f, TrainCommandFlags& t) {
  f.String("corpus", &t.corpus, "UTF-8 text file to train on (required)");
  f.String("tokenizer", &t.tokenizer, "use this tokenizer file (lanlm tokenizer train) instead of training one");
  engine::RegisterTrainFlags(f, &t);
  f.Int("threads", &t.threads, "compute threads (results are bit-identical for any count)", 1, 1024);
  f.String("out", &t.out, "checkpoint file to write (required; replaced atomically)");
  f.String("resume", &t.resume, "continue from this checkpoint (its config, seed, shards and tokenizer)");
  f.Int("eval-every", &t.eval_every, "validation loss every N steps and at the end (0 = only at the end)", 0,
        int64_t{1} << 40);
  f.Int("eval-windows", &t.eval_windows, "validation windows of T+1 tokens per evaluation (0 = the whole split)", 0,
        int64_t{1} << 40);
  f.Int("checkpoint-every", &t.checkpoint_every, "also write --out every N steps (0 = only at the end)", 0,
        int64_t{1} << 40);
  f.Int("log-every", &t.log_every, "when stdout is not a terminal, print a progress line every N steps", 1,
        int64_t{1} << 40);
  f.String("loss-csv", &t.loss_csv, "append step,loss,val_loss,tokens_per_s,elapsed_s rows to this file");
}

// Everything a run needs besides the corpus, from flags (fresh) or a checkpoint (resume).
struct Run {
  TrainOptions options;
  TrainingState state;
  BpeTokenizer tokenizer;
  uint64_t checkpoint_corpus_hash = 0;  // on resume: the corpus the checkpoint was trained on
  uint64_t corpus_hash = 0;             // the corpus of this run (Corpus::hash), saved with it
  std::string run_id = engine::NewRunId();  // kept from the checkpoint on resume
};

template <typename T>
Status CheckSame(const FlagSet& flags, const std::string& flag, const T& flag_value, const T& checkpoint_value,
                 const std::string& shown_flag, const std::string& shown_checkpoint) {
  if (flags.WasSet(flag) && !(flag_value == checkpoint_value)) {
    return InvalidArgumentError("--" + flag + " " + shown_flag + " contradicts the checkpoint's " + shown_checkpoint +
                                " (drop the flag to keep the checkpoint's value)");
  }
  return OkStatus();
}

StatusOr<Run> PrepareResume(const TrainCommandFlags& t, const FlagSet& flags) {
  LANLM_ASSIGN_OR_RETURN(engine::Checkpoint ckpt, engine::LoadCheckpoint(t.resume));
  if (ckpt.adam_m.empty()) {
    return FailedPreconditionError("checkpoint " + t.resume +
                                   " holds no optimizer state (inference only); cannot resume");
  }
  if (ckpt.tokenizer.empty()) return FailedPreconditionError("checkpoint " + t.resume + " holds no tokenizer");
  if (!ckpt.table_checksummed) {
    std::printf("note: checkpoint %s predates tensor-table checksums: its tensor layout is not verified\n",
                t.resume.c_str());
  }
  auto tokenizer = BpeTokenizer::Deserialize(ckpt.tokenizer);
  if (!tokenizer.ok()) return DataLossError("checkpoint " + t.resume + ": tokenizer: " + tokenizer.status().message());
  if (tokenizer->vocab_size() != ckpt.config.vocab_size) {
    return DataLossError("checkpoint " + t.resume + ": tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                         " tokens, model V = " + std::to_string(ckpt.config.vocab_size));
  }
  auto options = TrainOptions::FromMap(ckpt.training, ckpt.config);
  if (!options.ok()) return DataLossError("checkpoint " + t.resume + ": " + options.status().message());
  TrainOptions& o = *options;

  // Flags given on the command line must agree with what the checkpoint was trained with.
  if (flags.WasSet("config") || flags.WasSet("dim") || flags.WasSet("layers") || flags.WasSet("heads") ||
      flags.WasSet("ffn-hidden") || flags.WasSet("context")) {
    LANLM_ASSIGN_OR_RETURN(ModelConfig wanted, engine::ModelConfigFromFlags(t, ckpt.config.vocab_size));
    if (!(wanted == ckpt.config)) {
      return InvalidArgumentError("model flags give " + wanted.ToString() + ", which contradicts the checkpoint's " +
                                  ckpt.config.ToString());
    }
  }
  const std::string v = std::to_string(ckpt.config.vocab_size);
  LANLM_RETURN_IF_ERROR(CheckSame(flags, "vocab-size", t.vocab_size, ckpt.config.vocab_size,
                                  std::to_string(t.vocab_size), "vocab size " + v));
  if (flags.WasSet("tokenizer")) {
    LANLM_ASSIGN_OR_RETURN(BpeTokenizer given, BpeTokenizer::LoadFromFile(t.tokenizer));
    if (given.Serialize() != ckpt.tokenizer) {
      return InvalidArgumentError("--tokenizer " + t.tokenizer + " (" + std::to_string(given.vocab_size()) +
                                  " tokens, hash " + Hex16(given.Hash()) +
                                  ") contradicts the checkpoint's tokenizer (" + v + " tokens, hash " +
                                  Hex16(tokenizer->Hash()) + ")");
    }
  }
  auto str = [](double x) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.7g", x);  // a float shown as typed: 0.01, not 0.00999999978
    return std::string(buf);
  };
  LANLM_RETURN_IF_ERROR(
      CheckSame(flags, "seed", t.seed, ckpt.seed, std::to_string(t.seed), "seed " + std::to_string(ckpt.seed)));
  LANLM_RETURN_IF_ERROR(
      CheckSame(flags, "shards", t.shards, o.shards, std::to_string(t.shards), "shards " + std::to_string(o.shards)));
  LANLM_RETURN_IF_ERROR(CheckSame(flags, "micro-batch", t.micro_batch, o.micro_batch, std::to_string(t.micro_batch),
                                  "micro_batch " + std::to_string(o.micro_batch)));
  LANLM_RETURN_IF_ERROR(CheckSame(flags, "lr", t.lr, o.adamw.lr, str(t.lr), "lr " + str(o.adamw.lr)));
  LANLM_RETURN_IF_ERROR(CheckSame(flags, "warmup", t.warmup, o.adamw.warmup_steps, std::to_string(t.warmup),
                                  "warmup_steps " + std::to_string(o.adamw.warmup_steps)));
  LANLM_RETURN_IF_ERROR(CheckSame(flags, "weight-decay", t.weight_decay, o.adamw.weight_decay, str(t.weight_decay),
                                  "weight_decay " + str(o.adamw.weight_decay)));
  LANLM_RETURN_IF_ERROR(
      CheckSame(flags, "schedule", t.schedule, o.adamw.schedule, t.schedule, "schedule " + o.adamw.schedule));
  LANLM_RETURN_IF_ERROR(CheckSame(flags, "validation-fraction", t.validation_fraction, o.validation_fraction,
                                  str(t.validation_fraction), "validation_fraction " + str(o.validation_fraction)));
  LANLM_RETURN_IF_ERROR(engine::ApplyResumeSteps(t, flags.WasSet("steps"), ckpt.step, &o));
  LANLM_RETURN_IF_ERROR(o.Validate());

  TrainingState state;
  state.config = ckpt.config;
  state.params = std::move(ckpt.params);
  state.adam_m = std::move(ckpt.adam_m);
  state.adam_v = std::move(ckpt.adam_v);
  state.step = ckpt.step;
  Run run{std::move(o), std::move(state), std::move(*tokenizer)};
  run.checkpoint_corpus_hash = ckpt.corpus_hash;
  if (!ckpt.run_id.empty()) run.run_id = ckpt.run_id;  // older checkpoints: a fresh id
  return run;
}

StatusOr<Run> PrepareFresh(const TrainCommandFlags& t, const FlagSet& flags) {
  std::optional<BpeTokenizer> tokenizer;
  if (!t.tokenizer.empty()) {
    if (flags.WasSet("vocab-size")) return InvalidArgumentError("give --tokenizer or --vocab-size, not both");
    LANLM_ASSIGN_OR_RETURN(tokenizer, BpeTokenizer::LoadFromFile(t.tokenizer));
  } else {
    LANLM_RETURN_IF_ERROR(engine::ModelConfigFromFlags(t, 1024).status());  // bad flags fail before the slow part
    LANLM_ASSIGN_OR_RETURN(std::string text, engine::ReadTextFile(t.corpus));
    const auto start = std::chrono::steady_clock::now();
    LANLM_ASSIGN_OR_RETURN(tokenizer, BpeTokenizer::Train(text, engine::TokenizerVocabSize(t)));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("tokenizer: %d tokens learned from %s in %s\n", tokenizer->vocab_size(), t.corpus.c_str(),
                FormatDuration(secs).c_str());
  }
  LANLM_ASSIGN_OR_RETURN(TrainOptions o, engine::TrainOptionsFromFlags(t, tokenizer->vocab_size()));
  TrainingState state = TrainingState::Init(o.model, o.seed, o.init_std);
  Run run{std::move(o), std::move(state), std::move(*tokenizer)};
  return run;
}

Status SaveRun(const std::string& path, Run& run) {
  engine::Checkpoint c;
  c.config = run.state.config;
  c.step = run.state.step;
  c.seed = run.options.seed;
  c.corpus_hash = run.corpus_hash;
  c.run_id = run.run_id;
  c.training = run.options.ToMap();
  c.tokenizer = run.tokenizer.Serialize();
  // Borrow the state's vectors for the write instead of copying them.
  std::swap(c.params, run.state.params);
  std::swap(c.adam_m, run.state.adam_m);
  std::swap(c.adam_v, run.state.adam_v);
  Status s = engine::SaveCheckpoint(path, c);
  std::swap(c.params, run.state.params);
  std::swap(c.adam_m, run.state.adam_m);
  std::swap(c.adam_v, run.state.adam_v);
  return s;
}

// Progress lines: one live line rewritten in place on a terminal, plain lines otherwise.
class Progress {
 public:
  Progress(int64_t total, int64_t log_every) : total_(total), log_every_(log_every), tty_(isatty(STDOUT_FILENO)) {}

  // val < 0: no validation loss at this step.
  void Step(int64_t step, float loss, double val, double tokens_per_s, double eta_s) {
    if (val >= 0) last_val_ = val;
    std::string line = "step " + std::to_string(step) + "/" + std::to_string(total_) + "  loss " +
                       FormatFixed(loss, 4) + "  val " + (last_val_ >= 0 ? FormatFixed(last_val_, 4) : "-") + "  " +
                       FormatFixed(tokens_per_s, 0) + " tok/s  ETA " + FormatDuration(eta_s);
    if (tty_) {
      std::printf("\r\033[K%s", line.c_str());
      live_ = true;
    } else if (val >= 0 || step % log_every_ == 0 || step == total_) {
      std::printf("%s\n", line.c_str());
    }
    std::fflush(stdout);
  }
  // Ends the live line before other output.
  void Break() {
    if (live_) std::printf("\n");
    live_ = false;
  }

 private:
  int64_t total_, log_every_;
  bool tty_;
  bool live_ = false;
  double last_val_ = -1.0;
};

int Train(const TrainCommandFlags& t, const FlagSet& flags) {
  if (t.corpus.empty()) return Fail(kCommand, "--corpus FILE is required (lanlm train --help)", kExitUsage);
  if (t.out.empty()) return Fail(kCommand, "--out FILE is required (lanlm train --help)", kExitUsage);
  if (Status s = engine::ValidateTrainFlags(t); !s.ok()) return Fail(kCommand, s, kExitUsage);
  // Fail now, not after hours of training, when the checkpoint cannot be written.
  const size_t slash = t.out.rfind('/');
  const std::string out_dir = slash == std::string::npos ? "." : slash == 0 ? "/" : t.out.substr(0, slash);
  if (::access(out_dir.c_str(), W_OK) != 0) {
    return Fail(kCommand, "--out " + t.out + ": folder " + out_dir + " does not exist or is not writable");
  }
  auto prepared = t.resume.empty() ? PrepareFresh(t, flags) : PrepareResume(t, flags);
  if (!prepared.ok()) {
    // Values that contradict each other or the checkpoint are usage errors; files are failures.
    const bool usage = prepared.status().code() == StatusCode::kInvalidArgument;
    return Fail(kCommand, prepared.status(), usage ? kExitUsage : kExitFailure);
  }
  Run& run = *prepared;
  const TrainOptions& o = run.options;
  const int T = o.model.context;
  auto corpus = engine::LoadCorpus(t.corpus, run.tokenizer, o.validation_fraction);
  if (!corpus.ok()) return Fail(kCommand, corpus.status());
  if (Status s = engine::CheckResumeCorpus(t, run.checkpoint_corpus_hash, corpus->hash, t.corpus); !s.ok()) {
    return Fail(kCommand, s);
  }
  run.corpus_hash = corpus->hash;
  if (static_cast<int64_t>(corpus->train.size()) < T + 2) {
    return Fail(kCommand, "corpus " + t.corpus + " has " + std::to_string(corpus->train.size()) +
                              " training tokens, fewer than T + 2 = " + std::to_string(T + 2) +
                              " (use a longer text or a smaller --context)");
  }
  const bool can_eval = static_cast<int64_t>(corpus->validation.size()) >= T + 1;
  const int64_t end_step = t.stop_after > 0 ? std::min(t.stop_after, o.steps) : o.steps;
  const int64_t tokens_per_step = int64_t{o.shards} * o.micro_batch * T;

  std::printf("model %s, %lld parameters; corpus %s: %lld bytes, %zu train + %zu validation tokens\n",
              o.model.ToString().c_str(), static_cast<long long>(run.state.params.size()), t.corpus.c_str(),
              static_cast<long long>(corpus->text_bytes), corpus->train.size(), corpus->validation.size());
  std::printf("%s step %lld of %lld: %d shards x %d sequences x %d tokens = %lld tokens/step, %d threads\n",
              t.resume.empty() ? "starting at" : "resuming at", static_cast<long long>(run.state.step),
              static_cast<long long>(o.steps), o.shards, o.micro_batch, T, static_cast<long long>(tokens_per_step),
              t.threads);
  if (!can_eval) {
    std::printf("note: the validation split has %zu tokens, fewer than T + 1 = %d: no validation loss\n",
                corpus->validation.size(), T + 1);
  }

  std::ofstream csv;
  if (!t.loss_csv.empty()) {
    const bool append = !t.resume.empty() && std::ifstream(t.loss_csv).peek() != std::ifstream::traits_type::eof();
    csv.open(t.loss_csv, append ? std::ios::app : std::ios::trunc);
    if (!csv) return Fail(kCommand, "cannot write --loss-csv " + t.loss_csv);
    if (!append) csv << "step,loss,val_loss,tokens_per_s,elapsed_s\n" << std::flush;
  }

  engine::ThreadPool pool(t.threads);
  engine::LocalTrainer trainer(o, corpus->train, run.state, pool);
  // Mean validation loss (nats, >= 0), or -1 when the split is too short.
  auto evaluate = [&]() -> double {
    if (!can_eval) return -1.0;
    return engine::EvaluateLoss(trainer.model(), run.state.params.data(), corpus->validation, t.eval_windows, pool)
        .mean_loss;
  };

  StopSignals signals;
  Progress progress(o.steps, t.log_every);
  const auto start = std::chrono::steady_clock::now();
  const int64_t first_step = run.state.step;
  float loss = 0.0f;
  double val = -1.0;
  double tokens_per_s = 0.0, elapsed = 0.0;
  bool interrupted = false;
  while (run.state.step < end_step) {
    auto step_loss = trainer.Step();
    if (!step_loss.ok()) {
      progress.Break();
      if (step_loss.status().code() != StatusCode::kDataLoss) return Fail(kCommand, step_loss.status());
      // Diverged: the state is not saved; what --out holds (if anything) is the last good one.
      return Fail(kCommand, step_loss.status().message() + "; not saved: --out " + t.out +
                                " keeps the last checkpoint written (if any)");
    }
    loss = *step_loss;
    const int64_t step = run.state.step;
    const bool last = step == end_step || g_stop_requested.load();
    double step_val = -1.0;
    if (last || (t.eval_every > 0 && step % t.eval_every == 0)) step_val = evaluate();
    if (step_val >= 0) val = step_val;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int64_t done = step - first_step;
    tokens_per_s = elapsed > 0 ? static_cast<double>(done * tokens_per_step) / elapsed : 0.0;
    const double eta = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(end_step - step) : 0.0;
    progress.Step(step, loss, step_val, tokens_per_s, eta);
    if (csv.is_open()) {
      csv << step << ',' << FormatFixed(loss, 6) << ',' << (step_val >= 0 ? FormatFixed(step_val, 6) : "") << ','
          << FormatFixed(tokens_per_s, 1) << ',' << FormatFixed(elapsed, 3) << '\n'
          << std::flush;
    }
    if (!last && t.checkpoint_every > 0 && step % t.checkpoint_every == 0) {
      if (Status s = SaveRun(t.out, run); !s.ok()) {
        progress.Break();
        return Fail(kCommand, s);
      }
    }
    if (g_stop_requested.load()) {
      interrupted = true;
      break;
    }
  }
  progress.Break();
  if (run.state.step == first_step) val = evaluate();  // nothing to train: still report
  if (Status s = SaveRun(t.out, run); !s.ok()) return Fail(kCommand, s);
  if (interrupted || run.state.step < o.steps) {
    std::printf("%s at step %lld of %lld; continue with: lanlm train --resume %s --corpus %s --out %s\n",
                interrupted ? "interrupted" : "stopped", static_cast<long long>(run.state.step),
                static_cast<long long>(o.steps), t.out.c_str(), t.corpus.c_str(), t.out.c_str());
  }
  std::printf("step=%lld loss=%s val_loss=%s tokens_per_s=%s elapsed=%s checkpoint=%s fingerprint=%s\n",
              static_cast<long long>(run.state.step), FormatFixed(loss, 4).c_str(),
              val >= 0 ? FormatFixed(val, 4).c_str() : "-", FormatFixed(tokens_per_s, 0).c_str(),
              FormatDuration(elapsed).c_str(), t.out.c_str(), Hex16(run.state.Fingerprint()).c_str());
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace

int RunTrain(const Args& args) {
  TrainCommandFlags t;
  FlagSet flags(
      "lanlm train --corpus FILE --out FILE [flags]\n\n"
      "Trains a model on a UTF-8 text file in this process. Without --tokenizer, a BPE tokenizer\n"
      "of --vocab-size tokens is learned from the corpus first; the model's V is the tokenizer's\n"
      "size. Progress goes to stdout; the last line ends with fingerprint=<16 hex digits>, a hash\n"
      "of the parameters that is the same for any --threads. Ctrl-C finishes the current step,\n"
      "saves --out and exits 0; --resume continues it bit-identically.");
  RegisterFlags(flags, t);
  if (int rc = ParseFlagsOrExit(flags, args, kCommand); rc >= 0) return rc;
  return Train(t, flags);
}

}  // namespace lanlm::client
