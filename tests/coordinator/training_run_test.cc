// The coordinator's step loop (TrainingRun) without gRPC: fake worker links receive the plain
// step messages (engine/train/step_messages.h), the test computes gradients with the engine
// as a worker would and feeds chunks and commits back. The run must end bit-identical to the
// engine's LocalTrainer, its validation losses (--eval-every) the engine's EvaluateLoss of the
// same parameters, and bad commits must be answered without touching the parameters.
#include "coordinator/training_run.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <optional>

#include "engine/base/hash.h"
#include "engine/model/model.h"
#include "engine/train/trainer.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny.h"

namespace lanlm::coordinator {
namespace {

RunSetup TinySetup(int64_t steps) {
  CoordinatorOptions o;
  o.corpus = test_support::WriteTinyCorpus(test_support::TestTempDir("corpus"));
  test_support::ApplyTinyTrainFlags(o);
  o.shards = 3;
  o.steps = steps;
  o.warmup = 1;
  auto setup = PrepareRun(o, {});
  EXPECT_TRUE(setup.ok()) << setup.status().ToString();
  return std::move(*setup);
}

// Records what the loop sends to one worker.
class FakeLink final : public WorkerLink {
 public:
  Status SendParams(std::shared_ptr<const ParamSnapshot> params, int64_t /*from_offset*/) override {
    params_ = std::move(params);
    return OkStatus();
  }
  void SendLease(engine::ShardLease lease) override { leases.push_back(std::move(lease)); }
  void SendCommitResult(int64_t lease_id, const Status& status) override { results.emplace_back(lease_id, status); }
  void SendShutdown(const std::string&, bool finished) override { shutdown = finished; }
  void Close(const Status& status) override { closed = status; }

  const ParamSnapshot& params() const { return *params_; }
  int64_t params_version() const { return params_ ? params_->version : -1; }
  std::vector<engine::ShardLease> leases;
  std::vector<std::pair<int64_t, Status>> results;
  std::optional<bool> shutdown;
  std::optional<Status> closed;

 private:
  std::shared_ptr<const ParamSnapshot> params_;
};

// The gradient of a lease as a worker computes it, cut into chunks of 100 floats.
struct Gradient {
  std::vector<engine::FloatChunk> chunks;
  uint32_t crc32c = 0;  // the commit checksum
  float loss = 0.0f;
};

Gradient Compute(const FakeLink& link, const engine::ShardLease& lease, engine::ThreadPool& pool) {
  const ParamSnapshot& p = link.params();
  engine::Model model(p.config, lease.micro_batch);
  std::vector<float> grad(p.params.size());
  Gradient g;
  g.loss = engine::ComputeShardGradient(model, p.params.data(), lease.tokens.data(), lease.micro_batch, grad.data(),
                                        pool);
  const auto n = static_cast<int64_t>(grad.size());
  for (int64_t offset = 0; offset < n; offset += 100) {
    engine::FloatChunk& c = g.chunks.emplace_back();
    c.offset = offset;
    c.total = n;
    c.data.assign(reinterpret_cast<const char*>(grad.data() + offset), 4 * static_cast<size_t>(std::min<int64_t>(100, n - offset)));
    c.crc32c = engine::Crc32c(c.data.data(), c.data.size());
    g.crc32c = engine::Crc32c(&c.crc32c, 4, g.crc32c);
  }
  return g;
}

engine::ShardCommit CommitOf(const engine::ShardLease& lease, const Gradient& g, int64_t floats) {
  engine::ShardCommit commit;
  commit.lease_id = lease.lease_id;
  commit.floats = floats;
  commit.crc32c = g.crc32c;
  commit.loss = g.loss;
  return commit;
}

class TrainingRunTest : public ::testing::Test {
 protected:
  void Start(int64_t steps, RunSettings settings = {}) {
    RunSetup setup = TinySetup(steps);
    reference_ = setup;
    run_ = std::make_unique<TrainingRun>(std::move(setup), settings, io_, pool_,
                                         [this](const RunResult& r) { result_ = r; });
    run_->Start();
  }
  // Sends every chunk of g and the commit of lease on connection.
  void Deliver(int64_t connection, const engine::ShardLease& lease, const Gradient& g, engine::ShardCommit commit) {
    for (const engine::FloatChunk& chunk : g.chunks) run_->OnGradientChunk(connection, {lease.lease_id, chunk});
    run_->OnCommit(connection, commit);
  }
  // Also fills reference_validation_: the validation loss after each step, as `lanlm train`
  // computes it (its trainer's Model, the first `windows` windows).
  uint64_t ReferenceFingerprint(int64_t windows = 16) {
    engine::LocalTrainer trainer(reference_.train, reference_.train_tokens, reference_.state, pool_);
    while (reference_.state.step < reference_.train.steps) {
      EXPECT_TRUE(trainer.Step().ok());
      reference_validation_.push_back(static_cast<float>(
          engine::EvaluateLoss(trainer.model(), reference_.state.params.data(), reference_.validation_tokens, windows,
                               pool_)
              .mean_loss));
    }
    return reference_.state.Fingerprint();
  }

  boost::asio::io_context io_;
  engine::ThreadPool pool_{1};
  RunSetup reference_;
  std::vector<float> reference_validation_;
  std::unique_ptr<TrainingRun> run_;
  std::optional<RunResult> result_;
};

TEST_F(TrainingRunTest, TwoFakeWorkersEndBitIdenticalToLocalTrainer) {
  RunSettings settings;
  settings.eval_every = 2;  // steps 2 and 3 (the end)
  settings.eval_windows = 3;
  Start(3, settings);
  auto a = std::make_shared<FakeLink>(), b = std::make_shared<FakeLink>();
  run_->OnConnected(1, a, "w1", "a", -1);
  run_->OnConnected(2, b, "w2", "b", -1);
  const int64_t n = run_->parameter_count();
  // Round-robin: each asks, gets one lease, computes it and commits, until the run ends.
  for (int round = 0; round < 100 && !result_; ++round) {
    for (auto [id, link] : {std::pair{1, a.get()}, std::pair{2, b.get()}}) {
      const size_t before = link->leases.size();
      run_->OnLeaseRequest(id, link->params_version());
      if (link->leases.size() == before) continue;
      const engine::ShardLease lease = link->leases.back();
      const Gradient g = Compute(*link, lease, pool_);
      Deliver(id, lease, g, CommitOf(lease, g, n));
      ASSERT_TRUE(link->results.back().second.ok()) << link->results.back().second.ToString();
    }
  }
  ASSERT_TRUE(result_.has_value());
  EXPECT_TRUE(result_->finished);
  EXPECT_EQ(result_->step, 3);
  EXPECT_EQ(engine::Hex16(result_->fingerprint), engine::Hex16(ReferenceFingerprint(3)));
  ASSERT_GE(reference_.validation_tokens.size(), 3u * 8 + 1) << "the tiny corpus needs a validation split";
  const std::vector<StepRecord> history = run_->metrics().History(-1, 100);
  ASSERT_EQ(history.size(), 3u);
  EXPECT_EQ(history[0].validation_loss, 0.0f);  // not evaluated
  EXPECT_EQ(history[1].validation_loss, reference_validation_[1]);
  EXPECT_EQ(history[2].validation_loss, reference_validation_[2]);
  EXPECT_GT(history[2].validation_loss, 0.0f);
  EXPECT_EQ(run_->status().validation_loss, reference_validation_[2]);
  EXPECT_EQ(run_->metrics().Totals().validations, 2);
  EXPECT_EQ(a->shutdown, std::optional<bool>(true));
  EXPECT_EQ(a->leases.size() + b->leases.size(), 9u);  // 3 steps x 3 shards, each applied once
}

TEST(ValidationEvalTest, DueEveryNStepsRoundsThatCrossAMultipleAndAtTheEnd) {
  engine::ModelConfig config;
  config.context = 4;
  const ValidationEval every3(config, 1, std::vector<int32_t>(5, 0), 3, 1);
  EXPECT_FALSE(every3.Due(2, 1, 10));
  EXPECT_TRUE(every3.Due(3, 1, 10));
  EXPECT_TRUE(every3.Due(10, 1, 10));   // the end
  EXPECT_TRUE(every3.Due(7, 2, 10));    // a local-steps round 5..7 crossed 6
  EXPECT_FALSE(every3.Due(8, 1, 10));
  const ValidationEval end_only(config, 1, std::vector<int32_t>(5, 0), 0, 1);
  EXPECT_FALSE(end_only.Due(3, 1, 10));
  EXPECT_TRUE(end_only.Due(10, 1, 10));
  const ValidationEval too_short(config, 1, std::vector<int32_t>(4, 0), 1, 1);  // < T+1 tokens
  EXPECT_FALSE(too_short.possible());
  EXPECT_FALSE(too_short.Due(10, 1, 10));
}

TEST_F(TrainingRunTest, BadCommitsAreAnsweredAndTheShardIsLeasedAgain) {
  Start(1);
  auto link = std::make_shared<FakeLink>();
  run_->OnConnected(1, link, "w1", "a", -1);
  const int64_t n = run_->parameter_count();
  run_->OnLeaseRequest(1, -1);
  ASSERT_EQ(link->leases.size(), 1u);
  const engine::ShardLease lease = link->leases[0];
  const Gradient g = Compute(*link, lease, pool_);

  engine::ShardCommit wrong_size = CommitOf(lease, g, n + 1);
  Deliver(1, lease, g, wrong_size);
  EXPECT_EQ(link->results.back().second.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(link->results.back().second.message().find("floats"), std::string::npos);

  run_->OnLeaseRequest(1, 0);  // the same shard comes back under a new lease id
  ASSERT_EQ(link->leases.size(), 2u);
  const engine::ShardLease again = link->leases[1];
  EXPECT_EQ(again.shard, lease.shard);
  EXPECT_NE(again.lease_id, lease.lease_id);
  engine::ShardCommit bad_crc = CommitOf(again, g, n);
  bad_crc.crc32c ^= 1;
  Deliver(1, again, g, bad_crc);
  EXPECT_EQ(link->results.back().second.code(), StatusCode::kDataLoss);

  run_->OnCommit(1, CommitOf(lease, g, n));  // a lease that is no longer active
  EXPECT_FALSE(link->results.back().second.ok());
  EXPECT_EQ(run_->status().step, 0);  // nothing applied

  run_->OnBadMessage(1, InvalidArgumentError("unexpected message kind after Hello"));
  ASSERT_TRUE(link->closed.has_value());
  EXPECT_EQ(link->closed->code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lanlm::coordinator
