// Tests of `lanlm eval` (RunEval in-process) against a closed-form reference: a model whose
// output projection is zero predicts the uniform distribution, so loss = ln V exactly, and
// bits per byte follow from the decoded length of the scored tokens.
#include <gtest/gtest.h>

#include <cmath>

#include "client/commands.h"
#include "engine/io/checkpoint.h"
#include "engine/data/corpus.h"
#include "engine/model/parameters.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/client/offline_test_util.h"

namespace lanlm::client {
namespace {

using namespace testing_util;  // tests/client/offline_test_util.h

class EvalTest : public testing::Test {
 protected:
  void SetUp() override {
    auto text = engine::ReadTextFile(testing_util::GenesisPath());
    ASSERT_TRUE(text.ok());
    text_ = text->substr(0, 3000);
    text_path_ = scratch_ / "text.txt";
    std::ofstream(text_path_) << text_;
    auto tok = engine::BpeTokenizer::Train(text_, 150);
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    tokenizer_ = std::make_unique<engine::BpeTokenizer>(std::move(*tok));

    engine::Checkpoint c;
    c.config = {tokenizer_->vocab_size(), 16, 1, 2, 24, 16};
    c.tokenizer = tokenizer_->Serialize();
    c.params.resize(static_cast<size_t>(engine::ParameterCount(c.config)));
    engine::InitParameters(c.config, 7, 0.5f, c.params.data());
    for (const auto& t : engine::ParameterTensors(c.config)) {
      if (t.name == "output.weight") std::fill_n(c.params.begin() + t.offset, t.size, 0.0f);
    }
    checkpoint_ = scratch_ / "uniform.safetensors";
    ASSERT_TRUE(engine::SaveCheckpoint(checkpoint_, c).ok());
  }

  ScratchDir scratch_;
  std::string text_, text_path_, checkpoint_;
  std::unique_ptr<engine::BpeTokenizer> tokenizer_;
};

TEST_F(EvalTest, UniformModelScoresLnVAndMatchingBitsPerByte) {
  CommandResult r = RunCommand(RunEval, {"--checkpoint", checkpoint_, "--text", text_path_, "--threads", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<int32_t> ids = tokenizer_->Encode(text_);
  const int64_t T = 16;
  const int64_t windows = (static_cast<int64_t>(ids.size()) - 1) / T;
  int64_t bytes = 0;
  for (int64_t i = 1; i <= windows * T; ++i) bytes += static_cast<int64_t>(tokenizer_->TokenText(ids[i]).size());
  const double V = tokenizer_->vocab_size();
  EXPECT_EQ(std::stoll(Field(r.out, "tokens")), windows * T) << r.out;
  EXPECT_EQ(std::stoll(Field(r.out, "bytes")), bytes) << r.out;
  EXPECT_EQ(std::stoll(Field(r.out, "windows")), windows) << r.out;
  EXPECT_NEAR(std::stod(Field(r.out, "loss")), std::log(V), 1e-4) << r.out;
  EXPECT_NEAR(std::stod(Field(r.out, "ppl")), V, 2e-3 * V) << r.out;
  EXPECT_NEAR(std::stod(Field(r.out, "bpb")), std::log2(V) * static_cast<double>(windows * T) / bytes, 1e-4) << r.out;
  EXPECT_EQ(r.out.rfind("loss=", 0), 0u) << r.out;
}

TEST_F(EvalTest, MaxWindowsLimitsTheScoredText) {
  CommandResult r = RunCommand(RunEval, {"--checkpoint", checkpoint_, "--text", text_path_, "--max-windows", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Field(r.out, "tokens"), "48");
  EXPECT_EQ(Field(r.out, "windows"), "3");
}

TEST_F(EvalTest, BadFlagsAndFilesGiveOneClearLine) {
  const std::string short_text = scratch_ / "short.txt";
  std::ofstream(short_text) << "In the beginning";
  const std::string binary = scratch_ / "bin.txt";
  std::ofstream(binary) << "ok\n\xff\xfe";
  struct Case {
    Args args;
    int code;
    std::string message;
  };
  const Case cases[] = {
      {{"--text", text_path_}, 2, "--checkpoint FILE is required"},
      {{"--checkpoint", checkpoint_}, 2, "--text FILE is required"},
      {{"--checkpoint", checkpoint_, "--text", text_path_, "--max-windows", "-1"}, 2, "--max-windows=-1"},
      {{"--checkpoint", scratch_ / "none", "--text", text_path_}, 1, "none does not exist"},
      {{"--checkpoint", text_path_, "--text", text_path_}, 1, "exceeds the limit"},
      {{"--checkpoint", checkpoint_, "--text", scratch_ / "none.txt"}, 1, "none.txt does not exist"},
      {{"--checkpoint", checkpoint_, "--text", short_text}, 1, "fewer than T + 1 = 17"},
      {{"--checkpoint", checkpoint_, "--text", binary}, 1, "is not valid UTF-8: byte 0xff at offset 3 (line 2)"},
  };
  for (const Case& c : cases) {
    CommandResult r = RunCommand(RunEval, c.args);
    EXPECT_EQ(r.code, c.code) << c.message << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << "want: " << c.message << "\ngot: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("lanlm eval: ", 0), 0u) << r.err;
  }
}

TEST_F(EvalTest, ServingFormatsScoreThroughTheDecoderBesideFp32) {
  // The uniform model through the serving path: ln V in every format that holds it.
  CommandResult bf16 = RunCommand(RunEval, {"--checkpoint", checkpoint_, "--text", text_path_, "--weights", "bf16",
                                            "--greedy-prompts", "3", "--prompt-tokens", "4", "--new-tokens", "8"});
  ASSERT_EQ(bf16.code, 0) << bf16.err;
  EXPECT_NEAR(std::stod(Field(bf16.out, "loss")), std::log(tokenizer_->vocab_size()), 1e-5) << bf16.out;
  EXPECT_EQ(Field(bf16.out, "greedy_tokens"), "24") << bf16.out;

  // A model with real predictions: fp32 through the decoder equals the training forward to
  // summation order, and agrees with itself everywhere; bf16 and q8 stay close to fp32.
  engine::Checkpoint c;
  c.config = {tokenizer_->vocab_size(), 32, 2, 2, 64, 16};
  c.tokenizer = tokenizer_->Serialize();
  c.params.resize(static_cast<size_t>(engine::ParameterCount(c.config)));
  engine::InitParameters(c.config, 11, 0.2f, c.params.data());
  const std::string model = scratch_ / "model.safetensors";
  ASSERT_TRUE(engine::SaveCheckpoint(model, c).ok());
  CommandResult plain = RunCommand(RunEval, {"--checkpoint", model, "--text", text_path_});
  ASSERT_EQ(plain.code, 0) << plain.err;
  const double loss = std::stod(Field(plain.out, "loss"));
  const Args greedy = {"--prompt-tokens", "4", "--new-tokens", "12"};  // within T = 16
  auto with = [&](Args args) {
    args.insert(args.end(), greedy.begin(), greedy.end());
    return args;
  };
  CommandResult fp32 = RunCommand(RunEval, with({"--checkpoint", model, "--text", text_path_, "--weights", "fp32"}));
  ASSERT_EQ(fp32.code, 0) << fp32.err;
  EXPECT_NEAR(std::stod(Field(fp32.out, "loss")), loss, 1e-3 * loss) << fp32.out << plain.out;
  EXPECT_EQ(Field(fp32.out, "loss"), Field(fp32.out, "fp32_loss")) << fp32.out;
  EXPECT_EQ(Field(fp32.out, "top1_agree"), "1.0000") << fp32.out;
  EXPECT_EQ(Field(fp32.out, "greedy_agree"), "1.0000") << fp32.out;
  for (const char* format : {"bf16", "q8"}) {
    CommandResult r = RunCommand(RunEval, with({"--checkpoint", model, "--text", text_path_, "--weights", format}));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NEAR(std::stod(Field(r.out, "loss")), std::stod(Field(r.out, "fp32_loss")), 0.02 * loss) << r.out;
    EXPECT_GT(std::stod(Field(r.out, "top1_agree")), 0.8) << r.out;
  }

  // What cannot be scored says why.
  CommandResult q8 = RunCommand(RunEval, with({"--checkpoint", checkpoint_, "--text", text_path_, "--weights", "q8"}));
  EXPECT_EQ(q8.code, 1);
  EXPECT_NE(q8.err.find("q8 weights need dim and ffn_hidden to be multiples of 32; this model has dim = 16"),
            std::string::npos)
      << q8.err;
  CommandResult both = RunCommand(
      RunEval, with({"--checkpoint", model, "--text", text_path_, "--weights", "bf16", "--precision", "bf16"}));
  EXPECT_EQ(both.code, 2);
  EXPECT_NE(both.err.find("give one"), std::string::npos) << both.err;
  CommandResult long_prompt = RunCommand(
      RunEval, {"--checkpoint", model, "--text", text_path_, "--weights", "bf16", "--prompt-tokens", "16"});
  EXPECT_EQ(long_prompt.code, 2);
  EXPECT_NE(long_prompt.err.find("must fit the context T = 16"), std::string::npos) << long_prompt.err;
}

TEST_F(EvalTest, HelpDefinesTheMetricsAndListsFlags) {
  CommandResult r = RunCommand(RunEval, {"--help"});
  EXPECT_EQ(r.code, 0);
  for (const char* s : {"--checkpoint", "--text", "--threads", "--max-windows", "--batch", "bits per byte", "ln 2"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace lanlm::client
