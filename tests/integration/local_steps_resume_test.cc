// A --local-steps (DiLoCo) run keeps its outer Nesterov momentum in its checkpoints: stopped at
// a round's end and resumed with the same flags, it reaches the bits of an uninterrupted run
// (and without the momentum it would not); rounds that cannot resume that way are refused.
#include "coordinator/coordinator_server.h"
#include "engine/io/checkpoint.h"
#include "engine/train/training_checkpoint.h"
#include "tests/integration/cluster_harness.h"

namespace lanlm::testing {
namespace {

class LocalStepsResumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("rounds");
    options_ = TinyOptions(WriteCorpus(dir_), 6);  // rounds of 2 steps: [0,2) [2,4) [4,6)
    options_.shards_per_lease = 2;
    options_.local_steps = 2;
  }
  // Trains options to its end (or --stop-after) with one in-process worker; checkpoints in dir.
  coordinator::RunResult Train(coordinator::CoordinatorOptions options, const std::string& dir) {
    options.checkpoint_dir = dir_ + "/" + dir;
    return TrainWithWorkers(options, 1);
  }
  std::string Checkpoint(const std::string& dir, int64_t step) {
    return *engine::StepCheckpointPath(dir_ + "/" + dir, step);
  }
  std::string dir_;
  coordinator::CoordinatorOptions options_;
};

TEST_F(LocalStepsResumeTest, AResumedRunEqualsAnUninterruptedOne) {
  const auto straight = Train(options_, "straight");
  ASSERT_TRUE(straight.finished);

  auto first = options_;
  first.stop_after = 4;  // two rounds, so the momentum is not zero at the stop
  const auto stopped = Train(first, "stopped");
  EXPECT_EQ(stopped.step, 4);
  auto saved = engine::LoadCheckpoint(Checkpoint("stopped", 4));
  ASSERT_TRUE(saved.ok()) << saved.status().ToString();
  ASSERT_EQ(saved->outer_m.size(), saved->params.size());
  EXPECT_EQ(saved->outer.at("local_steps"), "2");
  EXPECT_NE(std::count(saved->outer_m.begin(), saved->outer_m.end(), 0.0f),
            static_cast<std::ptrdiff_t>(saved->outer_m.size()));

  auto second = options_;
  second.resume = Checkpoint("stopped", 4);
  const auto resumed = Train(second, "resumed");
  EXPECT_EQ(resumed.step, 6);
  EXPECT_EQ(Hex(resumed.fingerprint), Hex(straight.fingerprint));

  // The same checkpoint without its momentum gives other bits: the momentum is what carries.
  std::fill(saved->outer_m.begin(), saved->outer_m.end(), 0.0f);
  const std::string amnesic = dir_ + "/amnesic.safetensors";
  ASSERT_TRUE(engine::SaveCheckpoint(amnesic, *saved).ok());
  second.resume = amnesic;
  EXPECT_NE(Hex(Train(second, "amnesic").fingerprint), Hex(straight.fingerprint));
}

TEST_F(LocalStepsResumeTest, RoundsThatCannotResumeExactlyAreRefused) {
  auto split = options_;
  split.stop_after = 3;  // inside the round [2,4)
  auto refused = coordinator::TrainingServer::Start(split, GivenFlags{"steps"}, false);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("--stop-after 3 is not a multiple of --local-steps 2"), std::string::npos)
      << refused.status().ToString();

  auto first = options_;
  first.stop_after = 2;
  ASSERT_EQ(Train(first, "stopped").step, 2);
  auto other = options_;
  other.resume = Checkpoint("stopped", 2);
  other.local_steps = 3;
  auto setup = coordinator::PrepareRun(other, GivenFlags{"steps"});
  EXPECT_EQ(setup.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(setup.status().message().find("--local-steps 2 --outer-lr 0.7 --outer-momentum 0.9"), std::string::npos)
      << setup.status().ToString();
  EXPECT_NE(setup.status().message().find("asks for --local-steps 3"), std::string::npos);
  other.local_steps = 0;  // synchronous training (also `lanlm train` and --local) would drop the momentum
  setup = coordinator::PrepareRun(other, GivenFlags{"steps"});
  EXPECT_NE(setup.status().message().find("asks for --local-steps 0 (synchronous)"), std::string::npos)
      << setup.status().ToString();
  other.override_checkpoint = true;  // on purpose: synchronous from here, momentum dropped
  setup = coordinator::PrepareRun(other, GivenFlags{"steps"});
  ASSERT_TRUE(setup.ok()) << setup.status().ToString();
  EXPECT_TRUE(setup->state.outer_m.empty());
  EXPECT_TRUE(setup->state.outer_settings.empty());

  // A synchronous checkpoint may start rounds, with zero momentum.
  auto sync = options_;
  sync.local_steps = 0;
  sync.stop_after = 2;
  ASSERT_EQ(Train(sync, "sync").step, 2);
  auto rounds = options_;
  rounds.resume = Checkpoint("sync", 2);
  setup = coordinator::PrepareRun(rounds, GivenFlags{"steps"});
  ASSERT_TRUE(setup.ok()) << setup.status().ToString();
  EXPECT_EQ(setup->state.outer_m, std::vector<float>(setup->state.params.size(), 0.0f));
}

TEST(LocalStepsCheckpointTest, OuterMomentumAndItsSettingsAreSavedTogether) {
  const std::string dir = TempDir("outer");
  auto setup = coordinator::PrepareRun(TinyOptions(WriteCorpus(dir), 2), GivenFlags{"steps"});
  ASSERT_TRUE(setup.ok()) << setup.status().ToString();
  engine::Checkpoint c;
  c.config = setup->state.config;
  c.params = setup->state.params;
  c.outer_m.assign(c.params.size(), 0.5f);
  EXPECT_EQ(engine::SaveCheckpoint(dir + "/a.safetensors", c).code(), StatusCode::kInvalidArgument);
  c.outer = {{"local_steps", "2"}, {"lr", "0.7"}, {"momentum", "0.9"}};
  ASSERT_TRUE(engine::SaveCheckpoint(dir + "/a.safetensors", c).ok());
  auto loaded = engine::LoadCheckpoint(dir + "/a.safetensors");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->outer_m, c.outer_m);
  EXPECT_EQ(loaded->outer, c.outer);
  EXPECT_TRUE(loaded->adam_m.empty());  // a momentum block does not pass for AdamW moments
  c.outer_m.resize(3);
  EXPECT_EQ(engine::SaveCheckpoint(dir + "/b.safetensors", c).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lanlm::testing
