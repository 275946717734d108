// Tests of run_config: PrepareRun's errors for missing inputs and a resume below the
// checkpoint's step (the flags themselves: tests/engine/train_flags_test.cc; the resume rule
// through every entry point: tests/integration/resume_rule_test.cc).
#include "coordinator/run_config.h"

#include <gtest/gtest.h>


#include "engine/io/checkpoint.h"
#include "engine/train/training_checkpoint.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny.h"

namespace lanlm::coordinator {
namespace {

CoordinatorOptions Tiny() {
  CoordinatorOptions o;
  o.corpus = test_support::WriteTinyCorpus(test_support::TestTempDir("corpus"));
  test_support::ApplyTinyTrainFlags(o);
  return o;
}

TEST(RunConfigTest, PrepareRunTakesVFromTheTokenizer) {
  auto setup = PrepareRun(Tiny(), {});
  ASSERT_TRUE(setup.ok()) << setup.status().ToString();
  EXPECT_EQ(setup->train.model.vocab_size, setup->tokenizer->vocab_size());
  EXPECT_EQ(setup->state.step, 0);
  EXPECT_FALSE(setup->train_tokens.empty());
}

TEST(RunConfigTest, PrepareRunErrors) {
  CoordinatorOptions o = Tiny();
  o.corpus = "";
  EXPECT_EQ(PrepareRun(o, {}).status().code(), StatusCode::kInvalidArgument);
  o.corpus = "/nonexistent/corpus.txt";
  EXPECT_FALSE(PrepareRun(o, {}).ok());
  o = Tiny();
  o.resume = "/nonexistent/checkpoint.safetensors";
  EXPECT_FALSE(PrepareRun(o, {}).ok());
}

TEST(RunConfigTest, ResumeBelowTheCheckpointStepIsRefused) {
  auto setup = PrepareRun(Tiny(), {});
  ASSERT_TRUE(setup.ok());
  setup->state.step = 3;
  const engine::Checkpoint checkpoint =
      engine::MakeTrainingCheckpoint(setup->state, setup->train, *setup->tokenizer, setup->corpus_hash);
  const std::string path = ::testing::TempDir() + "/run_config_resume.safetensors";
  ASSERT_TRUE(engine::SaveCheckpoint(path, checkpoint).ok());
  CoordinatorOptions o = Tiny();
  o.resume = path;
  o.steps = 2;
  EXPECT_EQ(PrepareRun(o, {"steps"}).status().code(), StatusCode::kInvalidArgument);
  o.steps = 10;
  auto resumed = PrepareRun(o, {"steps"});
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(resumed->state.step, 3);
  EXPECT_EQ(resumed->train.steps, 10);
  EXPECT_EQ(resumed->train.adamw.total_steps, 10);
}

}  // namespace
}  // namespace lanlm::coordinator
