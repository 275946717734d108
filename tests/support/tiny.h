// The small inputs most suites train on: a repetitive corpus a 64-token tokenizer learns in
// milliseconds, the tiny model flags that go with it, and the Genesis text of tests/data.
#pragma once

#include <string>

#include "engine/cli/train_flags.h"

namespace lanlm::test_support {

// Writes <dir>/tiny_corpus.txt (300 lines of one sentence, about 16 KB) and returns its path.
std::string WriteTinyCorpus(const std::string& dir);

// A tokenizer of 64 tokens and V=64 C=16 L=1 NH=2 F=32 T=8, B=2, 3 steps: trains in
// milliseconds. Sets only these fields of flags.
void ApplyTinyTrainFlags(engine::TrainFlags& flags);

// tests/data/genesis.txt in the source tree.
std::string GenesisPath();

}  // namespace lanlm::test_support
