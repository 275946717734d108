// Test support; see temp_dir.h and tiny.h.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/support/temp_dir.h"
#include "tests/support/tiny.h"

namespace lanlm::test_support {
namespace {

// "<suite>_<test>" of the running test, or fallback outside one.
std::string TestName(const std::string& fallback, const char* separator) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) return fallback;
  return std::string(info->test_suite_name()) + separator + info->name();
}

}  // namespace

ScratchDir::ScratchDir(const std::string& name) {
  const std::string id = TestName(name, "_");
  path_ = (std::filesystem::path(::testing::TempDir()) / ("lanlm_" + id + "_" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

ScratchDir::~ScratchDir() { std::filesystem::remove_all(path_); }

std::string TestTempDir(const std::string& name) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / "lanlm_cluster" / (TestName("no-test", ".") + "." + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string WriteTinyCorpus(const std::string& dir) {
  const std::string path = dir + "/tiny_corpus.txt";
  std::string text;
  for (int i = 0; i < 300; ++i) text += "in the beginning god created the heaven and the earth.\n";
  std::ofstream(path) << text;
  return path;
}

void ApplyTinyTrainFlags(engine::TrainFlags& o) {
  o.vocab_size = 64;
  o.dim = 16;
  o.layers = 1;
  o.heads = 2;
  o.ffn_hidden = 32;
  o.context = 8;
  o.micro_batch = 2;
  o.steps = 3;
}

engine::ModelConfig TinyConfig(const TinySizes& sizes) {
  engine::ModelConfig c;
  c.vocab_size = sizes.vocab;
  c.dim = sizes.dim;
  c.n_layers = sizes.layers;
  c.n_heads = sizes.heads;
  c.ffn_hidden = sizes.ffn;
  c.context = sizes.context;
  return c;
}

std::string GenesisPath() { return LANLM_SOURCE_DIR "/tests/data/genesis.txt"; }

}  // namespace lanlm::test_support
