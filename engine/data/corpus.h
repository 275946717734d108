// engine/data/ owns training data. Corpus: a tokenized text split into training and validation parts, and
// the data sampler: shard contents are a pure function of (seed, step, shard index) (DESIGN.md §3), so
// resuming needs no sampler state and any worker can build any shard.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/tokenizer/tokenizer.h"

namespace lanlm::engine {

struct Corpus {
  std::vector<int32_t> train;       // first (1 - validation_fraction) of the tokens
  std::vector<int32_t> validation;  // the rest
  int64_t text_bytes = 0;
  uint64_t hash = 0;                // Fnv1a64 of all token ids (train then validation)
};

// Reads a UTF-8 text file (clear error for a missing, empty, or non-UTF-8 file), encodes it
// and splits off the last `validation_fraction` of tokens (in [0, 0.5]).
StatusOr<Corpus> LoadCorpus(const std::string& path, const BpeTokenizer& tokenizer, double validation_fraction);
StatusOr<std::string> ReadTextFile(const std::string& path);

// Fills tokens (B, T+1) for shard `shard` of step `step`: each row is the window
// train[o, o+T] at an offset o drawn by CounterRng from (seed, step, shard, row).
// FAILED_PRECONDITION when the training split has fewer than T+2 tokens.
Status SampleShard(const std::vector<int32_t>& train, uint64_t seed, int64_t step, int64_t shard, int B, int T,
                   int32_t* tokens);

}  // namespace lanlm::engine
