// --local-steps H (DiLoCo rounds): the cluster's parameters equal a single-process reference
// built from the engine's RunLocalSteps, GradientTree and OuterNesterovStep, for 1 and 3
// workers, with a last round shorter than H, and after a worker is lost mid-round; oversized
// rounds and --local --local-steps are refused.
#include "coordinator/coordinator_server.h"
#include "coordinator/local_run.h"
#include "engine/data/corpus.h"
#include "engine/train/gradient_tree.h"
#include "engine/train/local_steps.h"
#include "tests/integration/cluster_harness.h"

namespace lanlm::testing {
namespace {

using coordinator::TrainingServer;

// Rounds of min(H, steps left) steps; replica = aligned block of K shards, as the coordinator.
uint64_t LocalStepsReference(const coordinator::CoordinatorOptions& options) {
  auto setup = coordinator::PrepareRun(options, GivenFlags{"steps"});
  EXPECT_TRUE(setup.ok()) << setup.status().ToString();
  if (!setup.ok()) return 0;
  const engine::TrainOptions& train = setup->train;
  const int B = train.micro_batch, T = train.model.context, S = train.shards, K = options.shards_per_lease;
  const int64_t n = static_cast<int64_t>(setup->state.params.size()), per_shard = int64_t{B} * (T + 1);
  engine::ThreadPool pool(1);
  engine::Model model(train.model, B);
  std::vector<float> momentum(static_cast<size_t>(n)), mean(static_cast<size_t>(n));
  for (int64_t step = 0; step < train.steps;) {
    const int steps = static_cast<int>(std::min<int64_t>(options.local_steps, train.steps - step));
    engine::GradientTree tree(S, n);
    for (int first = 0; first < S; first += K) {
      const int count = std::min(K, S - first);
      std::vector<int32_t> tokens(static_cast<size_t>(steps * count * per_shard));
      for (int i = 0; i < steps * count; ++i) {
        EXPECT_TRUE(engine::SampleShard(setup->train_tokens, train.seed, step + i / count, first + i % count, B, T,
                                        tokens.data() + i * per_shard)
                        .ok());
      }
      std::vector<float> delta(static_cast<size_t>(n)), losses(static_cast<size_t>(count));
      EXPECT_TRUE(engine::RunLocalSteps(train.adamw, step, steps, count, model, B, setup->state.params.data(),
                                        tokens.data(), delta.data(), losses.data(), pool)
                      .ok());
      EXPECT_TRUE(tree.Add(first, K, std::move(delta), pool).ok());
    }
    tree.Finish(mean.data(), pool);
    const int replicas = (S + K - 1) / K;
    engine::OuterNesterovStep(options.outer_lr, options.outer_momentum, mean.data(),
                              static_cast<float>(S) / static_cast<float>(replicas), setup->state.params.data(),
                              momentum.data(), n, pool);
    step += steps;
  }
  return setup->state.Fingerprint();
}

class ClusterLocalStepsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("run");
    corpus_ = WriteCorpus(dir_);
    options_ = TinyOptions(corpus_, 5);  // rounds of 2, 2 and 1 steps
    options_.shards_per_lease = 2;
    options_.local_steps = 2;
  }
  std::string dir_, corpus_;
  coordinator::CoordinatorOptions options_;
};

TEST_F(ClusterLocalStepsTest, MatchesTheReferenceForOneAndThreeWorkers) {
  const std::string reference = Hex(LocalStepsReference(options_));
  auto sync = options_;
  sync.local_steps = 0;
  EXPECT_NE(reference, Hex(ReferenceFingerprint(sync)));
  for (int count : {1, 3}) {
    auto server = TrainingServer::Start(options_, GivenFlags{"steps"}, false);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    WorkerGroup workers((*server)->port(), 0, 1);
    for (int i = 0; i < count; ++i) workers.Add((*server)->port(), 1 + i % 2);
    const auto result = (*server)->Wait();
    workers.JoinAll();
    EXPECT_TRUE(result.finished);
    EXPECT_EQ(result.step, 5);
    EXPECT_EQ(Hex(result.fingerprint), reference) << count << " workers";
    int64_t accepted = 0;
    for (int i = 0; i < count; ++i) accepted += workers.worker(i).stats().accepted;
    EXPECT_EQ(accepted, 3 * 2);  // 3 rounds x 2 replicas, each exactly once
  }
}

TEST_F(ClusterLocalStepsTest, ARoundLostMidwayIsRecomputedIdentically) {
  const std::string reference = Hex(LocalStepsReference(options_));
  auto server = TrainingServer::Start(options_, GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  {
    RawClient crasher((*server)->port());
    ASSERT_TRUE(crasher.Connect());
    EXPECT_EQ(crasher.reply().inner().local_steps(), 2);
    v1::Lease lease;
    ASSERT_TRUE(crasher.TakeLease(&lease));
    EXPECT_EQ(lease.local_steps(), 2);
    EXPECT_EQ(lease.tokens_size(), 2 * 2 * 2 * 17);  // H x K x B x (T+1)
    crasher.Cancel();
  }
  WorkerGroup workers((*server)->port(), 1, 1);
  const auto result = (*server)->Wait();
  workers.JoinAll();
  EXPECT_EQ(Hex(result.fingerprint), reference);
}

TEST_F(ClusterLocalStepsTest, OversizedRoundsAndLocalModeAreRefused) {
  auto options = options_;
  options.local_steps = 100000;  // 100000 x 2 x 2 x 17 tokens: far over one message
  const auto big = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("--local-steps 100000"), std::string::npos) << big.status().ToString();
  EXPECT_EQ(coordinator::RunLocal(options_, GivenFlags{"steps"}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lanlm::testing
