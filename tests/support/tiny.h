// The small inputs most suites train on: a repetitive corpus a 64-token tokenizer learns in
// milliseconds, the tiny model flags that go with it, the tiny model configs of the unit
// suites, and the Genesis text of tests/data.
#pragma once

#include <string>

#include "engine/cli/train_flags.h"
#include "engine/model/model_config.h"

namespace lanlm::test_support {

// Writes <dir>/tiny_corpus.txt (300 lines of one sentence, about 16 KB) and returns its path.
std::string WriteTinyCorpus(const std::string& dir);

// A tokenizer of 64 tokens and V=64 C=16 L=1 NH=2 F=32 T=8, B=2, 3 steps: trains in
// milliseconds. Sets only these fields of flags.
void ApplyTinyTrainFlags(engine::TrainFlags& flags);

// Sizes of a test model. The defaults (V=11 C=8 L=2 NH=2 F=12 T=8) are the smallest model in
// which every op still has more than one of everything; a suite names only what it changes:
// TinyConfig({.vocab = 40, .dim = 16, .layers = 1, .ffn = 32}).
struct TinySizes {
  int vocab = 11;
  int dim = 8;
  int layers = 2;
  int heads = 2;
  int ffn = 12;
  int context = 8;
};
// The ModelConfig of those sizes (norm_eps and rope_theta at their defaults).
engine::ModelConfig TinyConfig(const TinySizes& sizes = {});

// tests/data/genesis.txt in the source tree.
std::string GenesisPath();

}  // namespace lanlm::test_support
