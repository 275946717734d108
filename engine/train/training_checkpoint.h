// The one place a training run becomes a checkpoint and a checkpoint becomes a training run
// again (DESIGN.md §5): `lanlm train`, `lanlm-coordinator --local` and the distributed
// coordinator all write and resume through these functions, so their files are identical
// for identical runs.
#pragma once

#include <cstdint>
#include <string>

#include "engine/base/status.h"
#include "engine/io/checkpoint.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/train/trainer.h"

namespace lanlm::engine {

// A checkpoint of state (params and AdamW moments, copied), the options it was trained with,
// its tokenizer and the hash of its corpus (Corpus::hash).
// run_id: the run's NewRunId(), kept across resume ("" = not recorded).
Checkpoint MakeTrainingCheckpoint(const TrainingState& state, const TrainOptions& options,
                                  const BpeTokenizer& tokenizer, uint64_t corpus_hash, const std::string& run_id = "");

// Writes the same file as SaveCheckpoint(path, MakeTrainingCheckpoint(...)) without copying the
// parameters: state's vectors are lent to the write and given back (also on error). Only for a
// caller whose state no other thread reads meanwhile.
Status SaveTrainingCheckpoint(const std::string& path, TrainingState& state, const TrainOptions& options,
                              const BpeTokenizer& tokenizer, uint64_t corpus_hash, const std::string& run_id = "");

// "<dir>/step-NNNNNNNN.safetensors" (8 digits, zero-padded): the name of a run's checkpoint
// after `step` steps in a checkpoint folder. Creates dir when missing.
StatusOr<std::string> StepCheckpointPath(const std::string& dir, int64_t step);

// What a checkpoint resumes: state, options (as trained; callers may move steps), tokenizer.
struct ResumePoint {
  TrainingState state;
  TrainOptions options;
  BpeTokenizer tokenizer;
  uint64_t corpus_hash = 0;  // the text it was trained on; 0 = not recorded
  uint64_t seed = 0;
  std::string run_id = "";         // "" in files written before run ids
  bool table_checksummed = false;  // false: an older file whose tensor table is not checksummed
};

// Checks that checkpoint (read from path, named in errors) can continue training: it holds
// AdamW moments and a tokenizer whose size is the model's V; its training options validate.
// FAILED_PRECONDITION for an inference-only file, DATA_LOSS for inconsistent contents.
StatusOr<ResumePoint> ResumePointFromCheckpoint(Checkpoint checkpoint, const std::string& path);

}  // namespace lanlm::engine
