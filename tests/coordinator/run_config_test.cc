// Tests of run_config: model config flags (as `lanlm train` reads them), TrainOptions, and
// PrepareRun's errors for missing inputs and a resume below the checkpoint's step.
#include "coordinator/run_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/io/checkpoint.h"

namespace lanlm::coordinator {
namespace {

std::string Corpus() {
  const std::string path = ::testing::TempDir() + "/run_config_corpus.txt";
  std::string text;
  for (int i = 0; i < 300; ++i) text += "in the beginning god created the heaven and the earth.\n";
  std::ofstream(path) << text;
  return path;
}

CoordinatorOptions Tiny() {
  CoordinatorOptions o;
  o.corpus = Corpus();
  o.vocab_size = 64;
  o.dim = 16;
  o.layers = 1;
  o.heads = 2;
  o.ffn_hidden = 32;
  o.context = 8;
  o.micro_batch = 2;
  o.steps = 3;
  return o;
}

TEST(RunConfigTest, ModelConfigFromNamedConfigAndOverrides) {
  CoordinatorOptions o = Tiny();
  auto config = BuildModelConfig(o, 77);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->vocab_size, 77);
  EXPECT_EQ(config->dim, 16);
  EXPECT_EQ(config->n_layers, 1);
  EXPECT_EQ(config->context, 8);
  o.config = "XL";
  EXPECT_EQ(BuildModelConfig(o, 77).status().code(), StatusCode::kInvalidArgument);
  o = Tiny();
  o.dim = 30;
  o.heads = 4;  // 30 is not divisible by 4
  EXPECT_EQ(BuildModelConfig(o, 77).status().code(), StatusCode::kInvalidArgument);
}

TEST(RunConfigTest, TrainOptionsMirrorTheFlags) {
  CoordinatorOptions o = Tiny();
  o.lr = 0.002f;
  o.warmup = 5;
  o.schedule = "constant";
  auto train = MakeTrainOptions(o, 64);
  ASSERT_TRUE(train.ok()) << train.status().ToString();
  EXPECT_EQ(train->steps, 3);
  EXPECT_EQ(train->adamw.total_steps, 3);
  EXPECT_EQ(train->adamw.lr, 0.002f);
  EXPECT_EQ(train->adamw.warmup_steps, 5);
  EXPECT_EQ(train->adamw.schedule, "constant");
  EXPECT_EQ(train->micro_batch, 2);
  o.micro_batch = 0;
  EXPECT_EQ(MakeTrainOptions(o, 64)->micro_batch, engine::NamedMicroBatch("S"));
  o.schedule = "linear";
  EXPECT_EQ(MakeTrainOptions(o, 64).status().code(), StatusCode::kInvalidArgument);
}

TEST(RunConfigTest, PrepareRunTakesVFromTheTokenizer) {
  auto setup = PrepareRun(Tiny(), false);
  ASSERT_TRUE(setup.ok()) << setup.status().ToString();
  EXPECT_EQ(setup->train.model.vocab_size, setup->tokenizer->vocab_size());
  EXPECT_EQ(setup->state.step, 0);
  EXPECT_FALSE(setup->train_tokens.empty());
}

TEST(RunConfigTest, PrepareRunErrors) {
  CoordinatorOptions o = Tiny();
  o.corpus = "";
  EXPECT_EQ(PrepareRun(o, false).status().code(), StatusCode::kInvalidArgument);
  o.corpus = "/nonexistent/corpus.txt";
  EXPECT_FALSE(PrepareRun(o, false).ok());
  o = Tiny();
  o.resume = "/nonexistent/checkpoint.safetensors";
  EXPECT_FALSE(PrepareRun(o, false).ok());
}

TEST(RunConfigTest, ResumeBelowTheCheckpointStepIsRefused) {
  auto setup = PrepareRun(Tiny(), false);
  ASSERT_TRUE(setup.ok());
  engine::Checkpoint checkpoint;
  checkpoint.config = setup->state.config;
  checkpoint.step = 3;
  checkpoint.seed = setup->train.seed;
  checkpoint.training = setup->train.ToMap();
  checkpoint.tokenizer = setup->tokenizer->Serialize();
  checkpoint.params = setup->state.params;
  checkpoint.adam_m = setup->state.adam_m;
  checkpoint.adam_v = setup->state.adam_v;
  const std::string path = ::testing::TempDir() + "/run_config_resume.safetensors";
  ASSERT_TRUE(engine::SaveCheckpoint(path, checkpoint).ok());
  CoordinatorOptions o = Tiny();
  o.resume = path;
  o.steps = 2;
  EXPECT_EQ(PrepareRun(o, /*steps_flag_set=*/true).status().code(), StatusCode::kInvalidArgument);
  o.steps = 10;
  auto resumed = PrepareRun(o, true);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(resumed->state.step, 3);
  EXPECT_EQ(resumed->train.steps, 10);
  EXPECT_EQ(resumed->train.adamw.total_steps, 10);
}

}  // namespace
}  // namespace lanlm::coordinator
