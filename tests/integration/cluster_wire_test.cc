// The cluster's wire formats (--wire fp32|bf16): within bf16 the parameters are bit-identical
// whatever the worker count, thread counts or a worker lost mid-lease, and differ from fp32;
// the bytes halve; a chunk in the other format is refused and training goes on; Join names
// both protocol versions on a mismatch; bad --wire values and --local --wire bf16 are refused.
#include "coordinator/coordinator_server.h"
#include "coordinator/local_run.h"
#include "tests/integration/cluster_harness.h"

namespace lanlm::testing {
namespace {

using coordinator::TrainingServer;

class ClusterWireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("run");
    corpus_ = WriteCorpus(dir_);
  }
  std::string dir_, corpus_;
};

TEST_F(ClusterWireTest, Bf16IsBitIdenticalAcrossWorkerCountsAndHalvesTheBytes) {
  auto options = TinyOptions(corpus_, 3);
  const std::string fp32 = Hex(ReferenceFingerprint(options));
  options.wire = "bf16";
  worker::WorkerStats one;
  const auto alone = TrainWithWorkers(options, 1, &one);
  ASSERT_TRUE(alone.finished);
  const auto three = TrainWithWorkers(options, 3);
  ASSERT_TRUE(three.finished);
  EXPECT_EQ(Hex(three.fingerprint), Hex(alone.fingerprint));
  EXPECT_NE(Hex(alone.fingerprint), fp32) << "bf16 rounding should change the trajectory";
  // One worker: 3 parameter versions and 12 shard gradients, 2 bytes per float each.
  const auto setup = coordinator::PrepareRun(options, GivenFlags{"steps"});
  ASSERT_TRUE(setup.ok());
  const int64_t n = static_cast<int64_t>(setup->state.params.size());
  EXPECT_EQ(one.param_bytes, 3 * n * 2);
  EXPECT_EQ(one.gradient_bytes, 12 * n * 2);
}

TEST_F(ClusterWireTest, Bf16SurvivesAWorkerLostMidLeaseWithBlocks) {
  auto options = TinyOptions(corpus_, 2);
  options.wire = "bf16";
  options.shards_per_lease = 2;
  const auto undisturbed = TrainWithWorkers(options, 2);
  ASSERT_TRUE(undisturbed.finished);

  auto server = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  {
    RawClient crasher((*server)->port());
    ASSERT_TRUE(crasher.Connect());
    EXPECT_EQ(crasher.reply().wire_format(), v1::WIRE_FORMAT_BF16);
    v1::Lease lease;
    ASSERT_TRUE(crasher.TakeLease(&lease));
    crasher.Cancel();  // its block goes back to the queue and is recomputed by another worker
  }
  WorkerGroup group((*server)->port(), 1, 1);
  const auto result = (*server)->Wait();
  group.JoinAll();
  EXPECT_EQ(Hex(result.fingerprint), Hex(undisturbed.fingerprint));
}

TEST_F(ClusterWireTest, ChunksOfTheOtherFormatAreRefusedAndTrainingGoesOn) {
  auto options = TinyOptions(corpus_, 1);
  options.wire = "bf16";
  const auto reference = TrainWithWorkers(options, 1);
  auto server = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  RawClient raw((*server)->port());
  ASSERT_TRUE(raw.Connect());
  const int64_t n = raw.parameter_count();
  v1::Lease lease;
  ASSERT_TRUE(raw.TakeLease(&lease));
  float loss = 0;
  const std::vector<float> grad = raw.Gradient(lease, &loss);
  const v1::CommitResult mixed = raw.Send(lease.lease_id(), protos::MakeChunks(grad.data(), n), n, loss);
  EXPECT_EQ(mixed.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(mixed.message().find("fp32"), std::string::npos) << mixed.message();
  raw.Close();
  WorkerGroup group((*server)->port(), 1, 1);
  const auto result = (*server)->Wait();
  group.JoinAll();
  EXPECT_EQ(Hex(result.fingerprint), Hex(reference.fingerprint));  // nothing of the refused commit applied
}

TEST_F(ClusterWireTest, JoinNamesBothProtocolVersionsAndBadWireIsRefused) {
  auto options = TinyOptions(corpus_, 1);
  auto server = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  RawClient raw((*server)->port());
  v1::JoinRequest old;
  old.set_protocol_version(2);
  v1::JoinReply reply;
  const grpc::Status refused = raw.Join(old, &reply);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(refused.error_message().find("2 (worker)"), std::string::npos) << refused.error_message();
  EXPECT_NE(refused.error_message().find(std::to_string(v1::PROTOCOL_VERSION_CURRENT) + " (coordinator)"),
            std::string::npos)
      << refused.error_message();
  ASSERT_TRUE(raw.Join({}, &reply).ok());
  EXPECT_EQ(reply.wire_format(), v1::WIRE_FORMAT_FP32);
  (*server)->Stop("test over");
  (*server)->Wait();

  options.wire = "fp16";
  const auto bad = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'fp16'"), std::string::npos) << bad.status().ToString();
  options.wire = "bf16";
  EXPECT_EQ(coordinator::RunLocal(options, GivenFlags{"steps"}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lanlm::testing
