// Test tool: writes a small checkpoint whose values follow closed-form patterns, so an
// independent reader (tests/engine/read_checkpoint.py) can check every element.
// usage: write_checkpoint OUT.safetensors   (prints the serialised tokenizer on stdout)
#include <cstdio>

#include "engine/io/checkpoint.h"
#include "engine/model/parameters.h"
#include "engine/tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  using namespace lanlm::engine;
  if (argc != 2) {
    std::fprintf(stderr, "usage: write_checkpoint OUT.safetensors\n");
    return 2;
  }
  Checkpoint c;
  auto tokenizer = BpeTokenizer::Train("the cat sat on the mat, \"caf\xc3\xa9\"\nthe cat sat\n", 40);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "%s\n", tokenizer.status().ToString().c_str());
    return 1;
  }
  c.config = {tokenizer->vocab_size(), 8, 2, 2, 12, 8};
  c.step = 5;
  c.seed = 99;
  c.training = {{"lr", "0.001"}, {"shards", "3"}};
  c.tokenizer = tokenizer->Serialize();
  const int64_t n = ParameterCount(c.config);
  for (int64_t i = 0; i < n; ++i) {
    c.params.push_back(static_cast<float>(i % 97) * 0.25f - 12.0f);
    c.adam_m.push_back(static_cast<float>(i % 13) - 6.0f);
    c.adam_v.push_back(static_cast<float>(i % 5) * 0.125f);
  }
  if (lanlm::Status s = SaveCheckpoint(argv[1], c); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::fwrite(c.tokenizer.data(), 1, c.tokenizer.size(), stdout);  // for the reader to compare
  return 0;
}
