// `lanlm eval`: loss, perplexity and bits per byte of a checkpoint on a text file, computed
// with the engine's EvaluateLoss in this process (no server); with --weights, through the
// serving path instead (client/serving_eval.h).
#include <cmath>
#include <cstdio>

#include "client/offline_common.h"
#include "client/serving_eval.h"
#include "engine/cli/train_flags.h"
#include "engine/io/checkpoint.h"
#include "engine/data/corpus.h"
#include "engine/model/model.h"
#include "engine/base/thread_pool.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/train/trainer.h"

namespace lanlm::client {
namespace {

constexpr const char* kCommand = "eval";

struct EvalFlags {
  std::string checkpoint;
  std::string text;
  int threads = engine::DefaultThreadCount();
  int64_t max_windows = 0;
  int batch = 8;
  std::string precision = "checkpoint";  // fp32 | bf16 | checkpoint (the run's own)
  std::string weights;                   // "" (training forward) | fp32 | bf16 | q8 (serving path)
  int greedy_prompts = 50;
  int prompt_tokens = 16;
  int new_tokens = 32;
};

// --weights: the format's loss against fp32 weights through the same KV-cached decoder.
int EvalServing(const EvalFlags& f, const engine::Checkpoint& ckpt, const std::vector<int32_t>& tokens) {
  if (f.precision != "checkpoint") {
    return Fail(kCommand, "--precision scores the training forward pass; --weights scores the serving path: give one",
                kExitUsage);
  }
  auto format = engine::ParseWeightFormat(f.weights);
  if (!format.ok()) return Fail(kCommand, format.status(), kExitUsage);
  auto weights = engine::ServingWeights::Convert(ckpt.config, ckpt.params.data(), *format);
  if (!weights.ok()) return Fail(kCommand, "checkpoint " + f.checkpoint + ": " + weights.status().message());
  auto fp32 = engine::ServingWeights::Convert(ckpt.config, ckpt.params.data(), engine::WeightFormat::kF32);
  if (!fp32.ok()) return Fail(kCommand, fp32.status());
  engine::ThreadPool pool(f.threads);
  auto r = EvaluateServing(*weights, *fp32, tokens, f.max_windows, f.batch, f.greedy_prompts, f.prompt_tokens,
                           f.new_tokens, pool);
  if (!r.ok()) return Fail(kCommand, r.status(), kExitUsage);
  std::printf("weights=%s loss=%.5f ppl=%.4f fp32_loss=%.5f fp32_ppl=%.4f ppl_change=%+.3f%% top1_agree=%.4f "
              "greedy_agree=%.4f greedy_tokens=%lld tokens=%lld\n",
              f.weights.c_str(), r->loss, std::exp(r->loss), r->fp32_loss, std::exp(r->fp32_loss),
              100.0 * (std::exp(r->loss - r->fp32_loss) - 1.0), r->top1_agreement, r->greedy_agreement,
              static_cast<long long>(r->greedy_tokens), static_cast<long long>(r->predictions));
  return kExitOk;
}

// The precision to score in: --precision, or the checkpoint's training precision (fp32 for
// files from before bf16 training).
StatusOr<engine::Precision> EvalPrecision(const EvalFlags& f, const engine::Checkpoint& ckpt) {
  std::string name = f.precision;
  if (name == "checkpoint") {
    auto it = ckpt.training.find("precision");
    name = it == ckpt.training.end() ? "fp32" : it->second;
  }
  engine::Precision p = engine::Precision::kFp32;
  LANLM_RETURN_IF_ERROR(engine::ParsePrecisionFlag(name, &p));
  return p;
}

int Eval(const EvalFlags& f) {
  if (f.checkpoint.empty()) return Fail(kCommand, "--checkpoint FILE is required (lanlm eval --help)", kExitUsage);
  if (f.text.empty()) return Fail(kCommand, "--text FILE is required (lanlm eval --help)", kExitUsage);
  auto ckpt = engine::LoadCheckpoint(f.checkpoint);
  if (!ckpt.ok()) return Fail(kCommand, ckpt.status());
  if (ckpt->tokenizer.empty()) return Fail(kCommand, "checkpoint " + f.checkpoint + " holds no tokenizer");
  auto tokenizer = engine::BpeTokenizer::Deserialize(ckpt->tokenizer);
  if (!tokenizer.ok())
    return Fail(kCommand, "checkpoint " + f.checkpoint + ": tokenizer: " + tokenizer.status().message());
  if (tokenizer->vocab_size() != ckpt->config.vocab_size) {
    return Fail(kCommand, "checkpoint " + f.checkpoint + ": tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                              " tokens, model V = " + std::to_string(ckpt->config.vocab_size));
  }
  auto text = engine::ReadTextFile(f.text);
  if (!text.ok()) return Fail(kCommand, text.status());
  const std::vector<int32_t> tokens = tokenizer->Encode(*text);
  const int64_t T = ckpt->config.context;
  if (static_cast<int64_t>(tokens.size()) < T + 1) {
    return Fail(kCommand, "text " + f.text + " encodes to " + std::to_string(tokens.size()) +
                              " tokens, fewer than T + 1 = " + std::to_string(T + 1) + " needed for one window");
  }
  if (!f.weights.empty()) return EvalServing(f, *ckpt, tokens);
  auto precision = EvalPrecision(f, *ckpt);
  if (!precision.ok()) return Fail(kCommand, precision.status(), kExitUsage);
  engine::ThreadPool pool(f.threads);
  engine::Model model(ckpt->config, f.batch, *precision);
  const engine::EvalResult r = engine::EvaluateLoss(model, ckpt->params.data(), tokens, f.max_windows, pool);
  // The scored text: the decoded bytes of every predicted token, tokens[1 .. predictions].
  int64_t bytes = 0;
  for (int64_t i = 1; i <= r.predictions; ++i) bytes += static_cast<int64_t>(tokenizer->TokenText(tokens[i]).size());
  const double total_nats = r.mean_loss * static_cast<double>(r.predictions);
  const double bpb = bytes > 0 ? total_nats / std::log(2.0) / static_cast<double>(bytes) : 0.0;
  std::printf("loss=%.6f ppl=%.4f bpb=%.6f tokens=%lld bytes=%lld windows=%lld\n", r.mean_loss, std::exp(r.mean_loss),
              bpb, static_cast<long long>(r.predictions), static_cast<long long>(bytes),
              static_cast<long long>(r.predictions / T));
  return kExitOk;
}

}  // namespace

int RunEval(const Args& args) {
  EvalFlags f;
  FlagSet flags(
      "lanlm eval --checkpoint FILE --text FILE [flags]\n\n"
      "Scores a checkpoint on a UTF-8 text file. The text is encoded with the checkpoint's\n"
      "tokenizer into ids x[0..n) and cut into consecutive windows x[iT .. iT+T] of T+1 tokens\n"
      "(T = the model's context; neighbours share one token, so every token after the first is\n"
      "predicted at most once; a final partial window is dropped). Prints\n"
      "  loss    mean next-token cross-entropy in nats over the predicted tokens\n"
      "  ppl     perplexity, exp(loss)\n"
      "  bpb     bits per byte: loss x tokens / ln 2 / bytes, where bytes is the length of the\n"
      "          decoded text of the predicted tokens (what the predictions cover)\n"
      "  tokens  predicted tokens (windows x T); also bytes and windows");
  flags.String("checkpoint", &f.checkpoint, "checkpoint file to score (required)");
  flags.String("text", &f.text, "UTF-8 text file to score it on (required)");
  flags.Int("threads", &f.threads, "compute threads (results are identical for any count)", 1, 1024);
  flags.Int("max-windows", &f.max_windows, "score at most this many windows from the start (0 = all)", 0,
            int64_t{1} << 40);
  flags.Int("batch", &f.batch, "windows per forward pass (memory vs speed)", 1, 1024);
  flags.String("precision", &f.precision,
               "matmul precision to score in: fp32, bf16, or checkpoint (the precision the checkpoint was trained in)");
  flags.String("weights", &f.weights,
               "score through the serving path (KV-cached decoder) with weights in this format: fp32, bf16 or q8, "
               "beside fp32 weights; prints both losses, the perplexity change, the teacher-forced argmax agreement "
               "and the free-running greedy agreement (empty = the training forward pass)");
  flags.Int("greedy-prompts", &f.greedy_prompts, "with --weights: greedy prompts (the first windows' first tokens)", 0,
            100000);
  flags.Int("prompt-tokens", &f.prompt_tokens, "with --weights: tokens per greedy prompt", 1, 1 << 20);
  flags.Int("new-tokens", &f.new_tokens, "with --weights: greedy tokens generated per prompt", 1, 1 << 20);
  if (int rc = ParseFlagsOrExit(flags, args, kCommand); rc >= 0) return rc;
  return Eval(f);
}

}  // namespace lanlm::client
