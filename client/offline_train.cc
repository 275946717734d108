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
#include <utility>

#include "client/offline_common.h"
#include "engine/base/hash.h"
#include "engine/base/thread_pool.h"
#include "engine/cli/run_history.h"
#include "engine/cli/train_flags.h"
#include "engine/cli/train_run.h"
#include "engine/data/corpus.h"
#include "engine/ops/matmul.h"
#include "engine/train/trainer.h"
#include "engine/train/training_checkpoint.h"

namespace lanlm::client {
namespace {

using engine::TrainOptions;

constexpr const char* kCommand = "train";

// The shared training flags (engine/cli/train_flags.h) and this command's own.
struct TrainCommandFlags : engine::TrainFlags {
  int threads = engine::DefaultThreadCount();
  std::string out;
  int64_t checkpoint_every = 0;
  int64_t log_every = 10;
  std::string loss_csv;
  std::string history;
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
  engine::RegisterTrainFlags(f, &t);
  f.Int("threads", &t.threads, "compute threads (results are bit-identical for any count)", 1, 1024);
  f.String("out", &t.out, "checkpoint file to write (required; replaced atomically)");
  f.Int("checkpoint-every", &t.checkpoint_every, "also write --out every N steps (0 = only at the end)", 0,
        int64_t{1} << 40);
  f.Int("log-every", &t.log_every, "when stdout is not a terminal, print a progress line every N steps", 1,
        int64_t{1} << 40);
  f.String("loss-csv", &t.loss_csv, "append step,loss,val_loss,tokens_per_s,elapsed_s rows to this file");
  f.String("history", &t.history,
           "write one JSON line per step to this file, the format of lanlm-coordinator's <checkpoint dir>/"
           "history.jsonl (with --resume: keeps the rows up to the resumed step)");
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

// Flags and the output folder, checked before anything slow; the exit code, or -1 to go on.
int CheckCommand(const TrainCommandFlags& t) {
  if (t.corpus.empty()) return Fail(kCommand, "--corpus FILE is required (lanlm train --help)", kExitUsage);
  if (t.out.empty()) return Fail(kCommand, "--out FILE is required (lanlm train --help)", kExitUsage);
  if (Status s = engine::ValidateTrainFlags(t); !s.ok()) return Fail(kCommand, s, kExitUsage);
  // Fail now, not after hours of training, when the checkpoint cannot be written.
  const size_t slash = t.out.rfind('/');
  const std::string out_dir = slash == std::string::npos ? "." : slash == 0 ? "/" : t.out.substr(0, slash);
  if (::access(out_dir.c_str(), W_OK) != 0) {
    return Fail(kCommand, "--out " + t.out + ": folder " + out_dir + " does not exist or is not writable");
  }
  return -1;
}

// One run of the command: the training core's spec and corpus, the trainer, the outputs.
class TrainCommand {
 public:
  TrainCommand(const TrainCommandFlags& t, engine::TrainSpec spec, engine::Corpus corpus)
      : t_(t),
        spec_(std::move(spec)),
        corpus_(std::move(corpus)),
        o_(spec_.train),
        can_eval_(static_cast<int64_t>(corpus_.validation.size()) >= o_.model.context + 1),
        end_step_(t.stop_after > 0 ? std::min(t.stop_after, o_.steps) : o_.steps),
        tokens_per_step_(int64_t{o_.shards} * o_.micro_batch * o_.model.context),
        pool_(t.threads),
        trainer_(o_, corpus_.train, spec_.state, pool_),
        progress_(o_.steps, t.log_every) {}

  int Run() {
    PrintPlan();
    if (int rc = OpenOutputs(); rc >= 0) return rc;
    StopSignals signals;
    start_ = std::chrono::steady_clock::now();
    first_step_ = spec_.state.step;
    bool interrupted = false;
    while (spec_.state.step < end_step_) {
      if (Status s = Step(); !s.ok()) {
        progress_.Break();
        if (s.code() != StatusCode::kDataLoss) return Fail(kCommand, s);
        // Diverged: the state is not saved; what --out holds (if anything) is the last good one.
        return Fail(kCommand,
                    s.message() + "; not saved: --out " + t_.out + " keeps the last checkpoint written (if any)");
      }
      if (g_stop_requested.load()) {
        interrupted = true;
        break;
      }
    }
    progress_.Break();
    if (spec_.state.step == first_step_) val_ = Evaluate();  // nothing to train: still report
    if (Status s = Save(); !s.ok()) return Fail(kCommand, s);
    PrintEnd(interrupted);
    return kExitOk;
  }

 private:
  void PrintPlan() const {
    const int T = o_.model.context;
    std::printf("model %s, %lld parameters; corpus %s: %lld bytes, %zu train + %zu validation tokens\n",
                o_.model.ToString().c_str(), static_cast<long long>(spec_.state.params.size()), t_.corpus.c_str(),
                static_cast<long long>(corpus_.text_bytes), corpus_.train.size(), corpus_.validation.size());
    std::printf("%s step %lld of %lld: %d shards x %d sequences x %d tokens = %lld tokens/step, %d threads\n",
                spec_.resumed ? "resuming at" : "starting at", static_cast<long long>(spec_.state.step),
                static_cast<long long>(o_.steps), o_.shards, o_.micro_batch, T,
                static_cast<long long>(tokens_per_step_), t_.threads);
    if (o_.precision == engine::Precision::kBf16) {
      std::printf("precision bf16: large matmuls on bf16 inputs with fp32 accumulation, kernel %s\n",
                  engine::Bf16KernelPath());
    }
    if (!can_eval_) {
      std::printf("note: the validation split has %zu tokens, fewer than T + 1 = %d: no validation loss\n",
                  corpus_.validation.size(), T + 1);
    }
  }

  // The exit code on failure, or -1.
  int OpenOutputs() {
    if (!t_.history.empty()) {
      auto kept = engine::RestartHistory(t_.history, spec_.state.step);
      if (!kept.ok()) return Fail(kCommand, "--history: " + kept.status().message());
    }
    if (t_.loss_csv.empty()) return -1;
    const bool append =
        spec_.resumed && std::ifstream(t_.loss_csv).peek() != std::ifstream::traits_type::eof();
    csv_.open(t_.loss_csv, append ? std::ios::app : std::ios::trunc);
    if (!csv_) return Fail(kCommand, "cannot write --loss-csv " + t_.loss_csv);
    if (!append) csv_ << "step,loss,val_loss,tokens_per_s,elapsed_s\n" << std::flush;
    return -1;
  }

  // Mean validation loss (nats, >= 0), or -1 when the split is too short.
  double Evaluate() {
    if (!can_eval_) return -1.0;
    return engine::EvaluateLoss(trainer_.model(), spec_.state.params.data(), corpus_.validation, t_.eval_windows,
                                pool_)
        .mean_loss;
  }

  Status Save() {
    return engine::SaveTrainingCheckpoint(t_.out, spec_.state, o_, *spec_.tokenizer, corpus_.hash, spec_.run_id);
  }

  // One optimizer step with its evaluation, progress line, CSV row and periodic checkpoint.
  Status Step() {
    const auto step_start = std::chrono::steady_clock::now();
    LANLM_ASSIGN_OR_RETURN(loss_, trainer_.Step());
    const double step_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    const int64_t step = spec_.state.step;
    const bool last = step == end_step_ || g_stop_requested.load();
    double step_val = -1.0;
    if (last || (t_.eval_every > 0 && step % t_.eval_every == 0)) step_val = Evaluate();
    if (step_val >= 0) val_ = step_val;
    elapsed_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const int64_t done = step - first_step_;
    tokens_per_s_ = elapsed_ > 0 ? static_cast<double>(done * tokens_per_step_) / elapsed_ : 0.0;
    const double eta = done > 0 ? elapsed_ / static_cast<double>(done) * static_cast<double>(end_step_ - step) : 0.0;
    progress_.Step(step, loss_, step_val, tokens_per_s_, eta);
    if (csv_.is_open()) {
      csv_ << step << ',' << FormatFixed(loss_, 6) << ',' << (step_val >= 0 ? FormatFixed(step_val, 6) : "") << ','
           << FormatFixed(tokens_per_s_, 1) << ',' << FormatFixed(elapsed_, 3) << '\n'
           << std::flush;
    }
    if (!t_.history.empty()) WriteHistory(step, step_s, step_val);
    if (!last && t_.checkpoint_every > 0 && step % t_.checkpoint_every == 0) return Save();
    return OkStatus();
  }

  // The history row of a step: the coordinator's keys; the whole step is local compute.
  void WriteHistory(int64_t step, double step_s, double val) {
    engine::StepRecord r;
    r.step = step;
    r.tokens = step * tokens_per_step_;
    r.loss = loss_;
    r.validation_loss = val >= 0 ? static_cast<float>(val) : 0.0f;
    r.tokens_per_second = step_s > 0 ? static_cast<double>(tokens_per_step_) / step_s : 0.0;
    r.step_s = r.compute_s = step_s;
    r.unix_ms = engine::UnixMillis();
    // A full disk must not cost the run: warn and go on (the checkpoint is what matters).
    if (Status s = engine::AppendHistory(t_.history, r); !s.ok()) {
      progress_.Break();
      std::fprintf(stderr, "lanlm train: warning: --history: %s\n", s.message().c_str());
    }
  }

  void PrintEnd(bool interrupted) const {
    const long long step = static_cast<long long>(spec_.state.step);
    if (interrupted || spec_.state.step < o_.steps) {
      std::printf("%s at step %lld of %lld; continue with: lanlm train --resume %s --corpus %s --out %s\n",
                  interrupted ? "interrupted" : "stopped", step, static_cast<long long>(o_.steps), t_.out.c_str(),
                  t_.corpus.c_str(), t_.out.c_str());
    }
    std::printf("step=%lld loss=%s val_loss=%s tokens_per_s=%s elapsed=%s checkpoint=%s fingerprint=%s\n", step,
                FormatFixed(loss_, 4).c_str(), val_ >= 0 ? FormatFixed(val_, 4).c_str() : "-",
                FormatFixed(tokens_per_s_, 0).c_str(), FormatDuration(elapsed_).c_str(), t_.out.c_str(),
                engine::Hex16(spec_.state.Fingerprint()).c_str());
    std::fflush(stdout);
  }

  const TrainCommandFlags& t_;
  engine::TrainSpec spec_;
  engine::Corpus corpus_;
  const TrainOptions& o_;
  const bool can_eval_;
  const int64_t end_step_;
  const int64_t tokens_per_step_;
  engine::ThreadPool pool_;
  engine::LocalTrainer trainer_;
  Progress progress_;
  std::ofstream csv_;
  std::chrono::steady_clock::time_point start_;
  int64_t first_step_ = 0;
  float loss_ = 0.0f;
  double val_ = -1.0;
  double tokens_per_s_ = 0.0, elapsed_ = 0.0;
};

int Train(const TrainCommandFlags& t, const FlagSet& flags) {
  if (int rc = CheckCommand(t); rc >= 0) return rc;
  auto spec = engine::PrepareTrainSpec(t, flags.Given());
  if (!spec.ok()) {
    // Values that contradict each other or the checkpoint are usage errors; files are failures.
    const bool usage = spec.status().code() == StatusCode::kInvalidArgument;
    return Fail(kCommand, spec.status(), usage ? kExitUsage : kExitFailure);
  }
  if (spec->tokenizer_seconds >= 0) {
    std::printf("tokenizer: %d tokens learned from %s in %s\n", spec->tokenizer->vocab_size(), t.corpus.c_str(),
                FormatDuration(spec->tokenizer_seconds).c_str());
  }
  auto corpus = engine::LoadTrainCorpus(t, *spec);
  if (!corpus.ok()) return Fail(kCommand, corpus.status());
  TrainCommand command(t, std::move(*spec), std::move(*corpus));
  return command.Run();
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
