// `lanlm tokenizer train` and `lanlm tokenize` called as functions: outputs, files written,
// --help, and the exit codes and single error lines of bad flags and bad files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "client/commands.h"
#include "engine/io/checkpoint.h"
#include "engine/model/parameters.h"
#include "engine/tokenizer/tokenizer.h"

namespace lanlm::client {
namespace {

namespace fs = std::filesystem;

class OfflineTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("lanlm_offline_tokenizer_" + std::to_string(::getpid()))).string();
    fs::create_directories(dir_);
    corpus_ = dir_ + "/corpus.txt";
    Write(corpus_,
          "In the beginning God created the heaven and the earth.\n"
          "And the earth was without form, and void.\n  And God said, Let there be light.\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  static void Write(const std::string& path, const std::string& data) { std::ofstream(path, std::ios::binary) << data; }
  // Runs f(args) and returns {exit code, stdout, stderr}.
  template <typename F>
  static std::tuple<int, std::string, std::string> Run(F f, const Args& args) {
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    const int code = f(args);
    std::fflush(stdout);
    std::string out = ::testing::internal::GetCapturedStdout();
    std::string err = ::testing::internal::GetCapturedStderr();
    return {code, out, err};
  }
  static bool OneLine(const std::string& s) { return !s.empty() && s.find('\n') == s.size() - 1; }

  std::string dir_, corpus_;
};

TEST_F(OfflineTokenizerTest, TrainWritesTheTokenizerAndReportsIt) {
  const std::string out = dir_ + "/t.bpe";
  auto [code, stdout_text, stderr_text] =
      Run(RunTokenizerTrain, {"--corpus", corpus_, "--vocab-size", "60", "--out", out});
  ASSERT_EQ(code, 0) << stderr_text;
  auto t = engine::BpeTokenizer::LoadFromFile(out);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->vocab_size(), 60);
  EXPECT_NE(stdout_text.find("vocab_size=60 merges=" + std::to_string(t->merge_count()) + " corpus_bytes="),
            std::string::npos)
      << stdout_text;
  EXPECT_NE(stdout_text.find("train_time="), std::string::npos);
}

TEST_F(OfflineTokenizerTest, HelpListsEveryFlagWithItsDefault) {
  auto [code, out, err] = Run(RunTokenizerTrain, {"--help"});
  EXPECT_EQ(code, 0);
  for (const char* s : {"--corpus", "--vocab-size", "4096", "--out"}) EXPECT_NE(out.find(s), std::string::npos) << s;
  auto [code2, out2, err2] = Run(RunTokenize, {"--help"});
  EXPECT_EQ(code2, 0);
  for (const char* s : {"--checkpoint", "--tokenizer", "--text"}) EXPECT_NE(out2.find(s), std::string::npos) << s;
}

TEST_F(OfflineTokenizerTest, TrainErrorsAreOneLineWithUsageOrRuntimeCodes) {
  const std::string out = dir_ + "/t.bpe";
  const struct {
    Args args;
    int code;
    const char* message;
  } cases[] = {
      {{"--out", out}, 2, "--corpus is required"},
      {{"--corpus", corpus_}, 2, "--out is required"},
      {{"--corpus", corpus_, "--out", out, "--vocab-size", "abc"}, 2, "--vocab-size=abc"},
      {{"--corpus", corpus_, "--out", out, "--vocab-size", "3"}, 2, "--vocab-size=3"},
      {{"--corpus", corpus_, "--out", out, "--vocab-size", "20"}, 2, "--vocab-size: vocab_size = 20 is below the"},
      {{"--corpus", corpus_, "--out", out, "--bogus"}, 2, "bogus"},
      {{"--corpus", dir_ + "/missing.txt", "--out", out}, 1, "missing.txt"},
      {{"--corpus", corpus_, "--out", dir_ + "/no/such/dir/t.bpe"}, 1, "no/such/dir"},
  };
  for (const auto& c : cases) {
    auto [code, stdout_text, err] = Run(RunTokenizerTrain, c.args);
    EXPECT_EQ(code, c.code) << c.message << ": " << err;
    EXPECT_TRUE(OneLine(err)) << err;
    EXPECT_NE(err.find(c.message), std::string::npos) << err;
    EXPECT_EQ(err.rfind("lanlm tokenizer train: ", 0), 0u) << err;
  }
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(OfflineTokenizerTest, TokenizePrintsTheIdsFromATokenizerOrACheckpoint) {
  auto t = engine::BpeTokenizer::Train("the light and the earth and the heaven\n", 40);
  ASSERT_TRUE(t.ok());
  const std::string tok = dir_ + "/t.bpe", text = dir_ + "/text.txt", ckpt = dir_ + "/c.safetensors";
  ASSERT_TRUE(t->SaveToFile(tok).ok());
  const std::string input = "the earth  and light\nthe end";
  Write(text, input);
  std::string expected;
  for (const int32_t id : t->Encode(input)) {
    if (!expected.empty()) expected += ' ';
    expected += std::to_string(id);
  }
  expected += "\n";
  auto [code, out, err] = Run(RunTokenize, {"--tokenizer", tok, "--text", text});
  ASSERT_EQ(code, 0) << err;
  EXPECT_EQ(out, expected);

  engine::Checkpoint c;
  c.config.vocab_size = t->vocab_size();
  c.config.dim = 8;
  c.config.n_layers = 1;
  c.config.n_heads = 2;
  c.config.ffn_hidden = 8;
  c.config.context = 8;
  c.tokenizer = t->Serialize();
  c.params.assign(static_cast<size_t>(engine::ParameterCount(c.config)), 0.5f);
  ASSERT_TRUE(engine::SaveCheckpoint(ckpt, c).ok());
  auto [code2, out2, err2] = Run(RunTokenize, {"--checkpoint", ckpt, "--text", text});
  ASSERT_EQ(code2, 0) << err2;
  EXPECT_EQ(out2, expected);
}

TEST_F(OfflineTokenizerTest, TokenizeErrorsAreOneLineWithUsageOrRuntimeCodes) {
  const std::string tok = dir_ + "/t.bpe", bad = dir_ + "/bad.bpe";
  ASSERT_TRUE(engine::BpeTokenizer::Train("ab ab\n", 12)->SaveToFile(tok).ok());
  Write(bad, "lanlm-bpe version=1 tokens=7 merges=0\ns <pad>\ns <xyz>\ns <bos>\ns <eos>\nc \\n\nc \\s\nc a\n");
  const struct {
    Args args;
    int code;
    const char* message;
  } cases[] = {
      {{}, 2, "exactly one of --checkpoint and --tokenizer"},
      {{"--tokenizer", tok, "--checkpoint", tok}, 2, "exactly one of"},
      {{"--tokenizer"}, 2, "--tokenizer"},
      {{"--tokenizer", dir_ + "/missing.bpe"}, 1, "missing.bpe"},
      {{"--tokenizer", bad}, 1, "line 3"},
      {{"--checkpoint", dir_ + "/missing.safetensors"}, 1, "missing.safetensors"},
      {{"--tokenizer", tok, "--text", dir_ + "/missing.txt"}, 1, "missing.txt"},
  };
  for (const auto& c : cases) {
    auto [code, out, err] = Run(RunTokenize, c.args);
    EXPECT_EQ(code, c.code) << c.message << ": " << err;
    EXPECT_TRUE(OneLine(err)) << err;
    EXPECT_NE(err.find(c.message), std::string::npos) << err;
    EXPECT_TRUE(out.empty()) << out;
  }
}

}  // namespace
}  // namespace lanlm::client
