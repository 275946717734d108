// The cluster under --precision bf16: the run's precision reaches every worker through Join,
// parameters are bit-identical to `lanlm train`'s LocalTrainer whatever the worker count or a
// worker lost mid-lease, and differ from fp32; a worker that does not list the run's precision
// is refused with FAILED_PRECONDITION naming both sides.
#include "coordinator/coordinator_server.h"
#include "tests/integration/cluster_harness.h"

namespace lanlm::testing {
namespace {

using coordinator::TrainingServer;

class ClusterPrecisionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("run");
    corpus_ = WriteCorpus(dir_);
  }
  std::string dir_, corpus_;
};

TEST_F(ClusterPrecisionTest, Bf16EqualsLocalTrainerForOneAndThreeWorkers) {
  auto options = TinyOptions(corpus_, 3);
  const std::string fp32 = Hex(ReferenceFingerprint(options));
  options.precision = "bf16";
  const std::string local = Hex(ReferenceFingerprint(options));
  EXPECT_NE(local, fp32) << "bf16 matmuls should change the trajectory";
  const auto one = TrainWithWorkers(options, 1);
  ASSERT_TRUE(one.finished);
  EXPECT_EQ(Hex(one.fingerprint), local);
  const auto three = TrainWithWorkers(options, 3);
  ASSERT_TRUE(three.finished);
  EXPECT_EQ(Hex(three.fingerprint), local);
}

TEST_F(ClusterPrecisionTest, Bf16SurvivesAWorkerLostMidLease) {
  auto options = TinyOptions(corpus_, 2);
  options.precision = "bf16";
  const std::string local = Hex(ReferenceFingerprint(options));
  auto server = TrainingServer::Start(options, GivenFlags{"steps", "precision"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  {
    RawClient crasher((*server)->port());
    ASSERT_TRUE(crasher.Connect());
    EXPECT_EQ(crasher.reply().precision(), "bf16");
    v1::Lease lease;
    ASSERT_TRUE(crasher.TakeLease(&lease));
    crasher.Cancel();  // its shard goes back to the queue and is recomputed by another worker
  }
  WorkerGroup group((*server)->port(), 1, 1);
  const auto result = (*server)->Wait();
  group.JoinAll();
  EXPECT_EQ(Hex(result.fingerprint), local);
}

TEST_F(ClusterPrecisionTest, JoinRefusesAWorkerWithoutTheRunsPrecision) {
  auto options = TinyOptions(corpus_, 1);
  options.precision = "bf16";
  auto server = TrainingServer::Start(options, GivenFlags{"steps", "precision"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  RawClient raw((*server)->port());
  v1::JoinReply reply;
  for (bool listed_fp32 : {true, false}) {  // an empty list means fp32 only
    v1::JoinRequest request;
    if (listed_fp32) request.add_precisions("fp32");
    const grpc::Status refused = raw.Join(request, &reply);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(refused.error_message().find("bf16 (coordinator)"), std::string::npos) << refused.error_message();
    EXPECT_NE(refused.error_message().find("fp32 (worker)"), std::string::npos) << refused.error_message();
  }
  v1::JoinRequest able;
  able.add_precisions("fp32");
  able.add_precisions("bf16");
  ASSERT_TRUE(raw.Join(able, &reply).ok());
  EXPECT_EQ(reply.precision(), "bf16");
  (*server)->Stop("test over");
  (*server)->Wait();
}

}  // namespace
}  // namespace lanlm::testing
