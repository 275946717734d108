// Checkpoint assembly and resume; see training_checkpoint.h.
#include "engine/train/training_checkpoint.h"

#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <utility>

namespace lanlm::engine {
namespace {

// The metadata every training checkpoint carries; the tensors are filled by the caller.
Checkpoint CheckpointHeader(const TrainingState& state, const TrainOptions& options, const BpeTokenizer& tokenizer,
                            uint64_t corpus_hash, const std::string& run_id) {
  Checkpoint c;
  c.config = state.config;
  c.step = state.step;
  c.seed = options.seed;
  c.corpus_hash = corpus_hash;
  c.run_id = run_id;
  c.training = options.ToMap();
  c.tokenizer = tokenizer.Serialize();
  return c;
}

void SwapTensors(Checkpoint& c, TrainingState& state) {
  std::swap(c.params, state.params);
  std::swap(c.adam_m, state.adam_m);
  std::swap(c.adam_v, state.adam_v);
  std::swap(c.outer_m, state.outer_m);
  std::swap(c.outer, state.outer_settings);
}

}  // namespace

Checkpoint MakeTrainingCheckpoint(const TrainingState& state, const TrainOptions& options,
                                  const BpeTokenizer& tokenizer, uint64_t corpus_hash, const std::string& run_id) {
  Checkpoint c = CheckpointHeader(state, options, tokenizer, corpus_hash, run_id);
  c.params = state.params;
  c.adam_m = state.adam_m;
  c.adam_v = state.adam_v;
  c.outer_m = state.outer_m;
  c.outer = state.outer_settings;
  return c;
}

Status SaveTrainingCheckpoint(const std::string& path, TrainingState& state, const TrainOptions& options,
                              const BpeTokenizer& tokenizer, uint64_t corpus_hash, const std::string& run_id) {
  Checkpoint c = CheckpointHeader(state, options, tokenizer, corpus_hash, run_id);
  SwapTensors(c, state);  // borrow the state's vectors for the write instead of copying them
  Status saved = SaveCheckpoint(path, c);
  SwapTensors(c, state);
  return saved;
}

StatusOr<std::string> StepCheckpointPath(const std::string& dir, int64_t step) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return UnavailableError("cannot create checkpoint folder " + dir + ": " + ec.message());
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08" PRId64 ".safetensors", step);
  return (std::filesystem::path(dir) / name).string();
}

StatusOr<ResumePoint> ResumePointFromCheckpoint(Checkpoint checkpoint, const std::string& path) {
  const size_t n = checkpoint.params.size();
  if (checkpoint.adam_m.size() != n || checkpoint.adam_v.size() != n) {
    return FailedPreconditionError("checkpoint " + path +
                                   " holds no optimizer state (inference only); cannot resume");
  }
  if (checkpoint.tokenizer.empty()) return FailedPreconditionError("checkpoint " + path + " holds no tokenizer");
  StatusOr<BpeTokenizer> tokenizer = BpeTokenizer::Deserialize(checkpoint.tokenizer);
  if (!tokenizer.ok()) return DataLossError("checkpoint " + path + ": tokenizer: " + tokenizer.status().message());
  if (tokenizer->vocab_size() != checkpoint.config.vocab_size) {
    return DataLossError("checkpoint " + path + ": tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                         " tokens, model V = " + std::to_string(checkpoint.config.vocab_size));
  }
  StatusOr<TrainOptions> options = TrainOptions::FromMap(checkpoint.training, checkpoint.config);
  if (!options.ok()) return DataLossError("checkpoint " + path + ": " + options.status().message());
  ResumePoint point{TrainingState{}, std::move(*options), std::move(*tokenizer)};
  point.state.config = checkpoint.config;
  point.state.params = std::move(checkpoint.params);
  point.state.adam_m = std::move(checkpoint.adam_m);
  point.state.adam_v = std::move(checkpoint.adam_v);
  point.state.outer_m = std::move(checkpoint.outer_m);
  point.state.outer_settings = std::move(checkpoint.outer);
  point.state.step = checkpoint.step;
  point.corpus_hash = checkpoint.corpus_hash;
  point.seed = checkpoint.seed;
  point.run_id = checkpoint.run_id;
  point.table_checksummed = checkpoint.table_checksummed;
  return point;
}

}  // namespace lanlm::engine
