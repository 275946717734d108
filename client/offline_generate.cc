// `lanlm generate --checkpoint FILE --prompt TEXT`: KV-cached generation on this machine with
// the engine alone (no server). Text streams to stdout; finish reason and speed to stderr.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "client/commands.h"
#include "engine/cli/flags.h"
#include "engine/io/checkpoint.h"
#include "engine/generate/decoder.h"
#include "engine/generate/generation.h"
#include "engine/generate/serving_weights.h"
#include "engine/base/thread_pool.h"
#include "engine/tokenizer/tokenizer.h"

namespace lanlm::client {

namespace {

struct GenerateOptions {
  std::string checkpoint_path;
  std::string prompt;
  std::string stop;
  int threads = 0;
  std::string weights_name = "fp32";
  engine::SamplingOptions sampling;
  engine::StopOptions stopping;
  bool max_new_tokens_set = false;
};

// Reads the flags into o; returns -1 to go on, else the exit code (0 after --help, 2 on a bad flag).
int ParseGenerateFlags(const Args& args, GenerateOptions& o) {
  FlagSet flags("lanlm generate --checkpoint FILE --prompt TEXT [flags]: stream a generation from a checkpoint");
  flags.String("checkpoint", &o.checkpoint_path, "checkpoint file (.safetensors) to generate from (required)");
  flags.String("prompt", &o.prompt, "text to continue (required)");
  flags.Int("max-new-tokens", &o.stopping.max_new_tokens,
            "tokens to generate at most (unset: fewer when the context is shorter)", 1, 1 << 20);
  flags.Float("temperature", &o.sampling.temperature, "sampling temperature; 0 = greedy", 0.0, 1000.0);
  flags.Int("top-k", &o.sampling.top_k, "sample among the k most likely tokens; 0 = all", 0, 1 << 20);
  flags.Float("top-p", &o.sampling.top_p, "sample within this probability mass (0, 1]", 1e-6, 1.0);
  flags.Uint64("seed", &o.sampling.seed, "sampling seed (same seed and prompt = same text)");
  flags.Float("confidence-threshold", &o.stopping.confidence_threshold,
              "stop after 3 tokens in a row whose top probability is below this; 0 = never", 0.0, 0.999999);
  flags.Bool("stop-on-eos", &o.stopping.stop_on_eos, "stop at the end-of-sequence token");
  flags.String("stop", &o.stop, "stop when the text contains this string (never printed); empty = none");
  flags.Int("threads", &o.threads, "engine threads; 0 = all cores", 0, 1024);
  flags.String("weights", &o.weights_name, "weight format to decode with: fp32, bf16 or q8 (converted on load)");
  const Status parsed = flags.Parse(args);
  if (!parsed.ok()) {
    std::fprintf(stderr, "lanlm generate: %s\n", parsed.message().c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  if (o.checkpoint_path.empty() || o.prompt.empty()) {
    std::fprintf(stderr, "lanlm generate: --checkpoint and --prompt are required (or --server for a server)\n");
    return 2;
  }
  if (!o.stop.empty()) o.stopping.stop.push_back(o.stop);
  o.max_new_tokens_set = flags.WasSet("max-new-tokens");
  return -1;
}

// Decodes from the prompt's tokens, text to stdout as it comes, the summary line to stderr.
int StreamGeneration(const GenerateOptions& o, const engine::Checkpoint& checkpoint,
                     const engine::ServingWeights& weights, const engine::BpeTokenizer& tokenizer,
                     const std::vector<int32_t>& tokens, const engine::StopOptions& stopping) {
  const engine::ModelConfig& config = checkpoint.config;
  engine::ThreadPool pool(o.threads);
  engine::Decoder decoder(config);
  engine::DecodeState state(config);
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  Clock::time_point first, last;
  int steps = 0;
  auto result = engine::RunGeneration(
      decoder, weights, tokenizer, state, tokens, o.sampling, stopping,
      [&](const engine::Generation::Step& step) {
        last = Clock::now();
        if (steps++ == 0) first = last;
        std::fwrite(step.text.data(), 1, step.text.size(), stdout);
        std::fflush(stdout);
        return true;
      },
      pool);
  if (!result.ok()) {
    std::fprintf(stderr, "lanlm generate: %s\n", result.status().ToString().c_str());
    return 1;
  }
  std::fputc('\n', stdout);
  using Seconds = std::chrono::duration<double>;
  const double decode_s = Seconds(last - first).count();
  const double rate = steps > 1 && decode_s > 0 ? (steps - 1) / decode_s : 0.0;
  std::fprintf(stderr, "[%s] %d tokens (prompt %lld), first token %.3f s, %.1f tokens/s (step %lld, %s, %s weights)\n",
               engine::FinishReasonName(result->finish), result->generated,
               static_cast<long long>(result->prompt_tokens), Seconds(first - start).count(), rate,
               static_cast<long long>(checkpoint.step), config.ToString().c_str(), o.weights_name.c_str());
  return 0;
}

}  // namespace

int RunGenerateOffline(const Args& args) {
  GenerateOptions o;
  if (const int exit_code = ParseGenerateFlags(args, o); exit_code >= 0) return exit_code;
  auto checkpoint = engine::LoadCheckpoint(o.checkpoint_path);
  if (!checkpoint.ok()) {
    std::fprintf(stderr, "lanlm generate: %s\n", checkpoint.status().ToString().c_str());
    return 1;
  }
  auto tokenizer = engine::BpeTokenizer::Deserialize(checkpoint->tokenizer);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "lanlm generate: tokenizer in %s: %s\n", o.checkpoint_path.c_str(),
                 tokenizer.status().ToString().c_str());
    return 1;
  }
  const engine::ModelConfig& config = checkpoint->config;
  auto format = engine::ParseWeightFormat(o.weights_name);
  if (!format.ok()) {
    std::fprintf(stderr, "lanlm generate: %s\n", format.status().ToString().c_str());
    return 2;
  }
  auto weights = engine::ServingWeights::Convert(config, checkpoint->params.data(), *format);
  if (!weights.ok()) {
    std::fprintf(stderr, "lanlm generate: %s: %s\n", o.checkpoint_path.c_str(), weights.status().ToString().c_str());
    return 1;
  }
  const std::vector<int32_t> tokens = tokenizer->Encode(o.prompt);
  engine::StopOptions stopping = o.stopping;
  if (!o.max_new_tokens_set) {
    const int64_t room = config.context - static_cast<int64_t>(tokens.size());
    if (room >= 1 && room < stopping.max_new_tokens) stopping.max_new_tokens = static_cast<int>(room);
  }
  return StreamGeneration(o, *checkpoint, *weights, *tokenizer, tokens, stopping);
}

}  // namespace lanlm::client
