// lanlm-coordinator refuses, at start, a serving format that cannot hold the model it would
// serve (--serve with --weights q8 and a dim that is not a multiple of 32), instead of failing
// every Generate request later; a format that fits starts.
#include <csignal>

#include "engine/train/training_checkpoint.h"
#include "tests/integration/cluster_harness.h"
#include "tests/support/process.h"

namespace lanlm::testing {
namespace {

const std::string kCoordinator = std::string(LANLM_BINARY_DIR) + "/coordinator/lanlm-coordinator";

TEST(ServeWeightsTest, AFormatThatCannotHoldTheModelIsRefusedAtStart) {
  const std::string dir = TempDir("serve-q8");
  auto options = TinyOptions(WriteCorpus(dir), 1);
  options.dim = 48;  // q8 groups are 32 wide
  auto setup = coordinator::PrepareRun(options, GivenFlags{"steps"});
  ASSERT_TRUE(setup.ok()) << setup.status().ToString();
  const std::string checkpoint = dir + "/model.safetensors";
  ASSERT_TRUE(engine::SaveTrainingCheckpoint(checkpoint, setup->state, setup->train, *setup->tokenizer, 0).ok());

  const std::string refused_log = dir + "/q8.log";
  const pid_t q8 = Spawn({kCoordinator, "--serve", "--checkpoint", checkpoint, "--listen", "127.0.0.1:0", "--weights",
                          "q8", "--threads", "1"},
                         refused_log);
  EXPECT_EQ(WaitExit(q8, std::chrono::seconds(60)), 2);
  const std::string refused = ReadAll(refused_log);
  EXPECT_NE(refused.find("q8 weights need dim and ffn_hidden to be multiples of 32; this model has dim = 48"),
            std::string::npos)
      << refused;
  EXPECT_NE(refused.find(checkpoint), std::string::npos) << refused;

  const std::string bf16_log = dir + "/bf16.log";
  const pid_t bf16 = Spawn({kCoordinator, "--serve", "--checkpoint", checkpoint, "--listen", "127.0.0.1:0", "--weights",
                            "bf16", "--threads", "1"},
                           bf16_log);
  EXPECT_TRUE(WaitForLog(bf16_log, "serving " + checkpoint, std::chrono::seconds(60))) << ReadAll(bf16_log);
  kill(bf16, SIGTERM);
  EXPECT_EQ(WaitExit(bf16, std::chrono::seconds(60)), 0) << ReadAll(bf16_log);
}

}  // namespace
}  // namespace lanlm::testing
