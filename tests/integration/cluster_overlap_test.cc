// Protocol 6 (transfer overlapped with compute): the coordinator accepts a lease's gradient
// chunks in any order, refuses an overlapping or duplicate range and names a gap, and a
// worker that goes away while its parameters are still arriving, or with its gradient half
// sent, has its lease recomputed in full by another: the parameters are bit-identical to the
// single-process LocalTrainer's. Real workers (which stream both ways) match it with
// multi-shard leases in both wire formats.
#include "coordinator/coordinator_server.h"
#include "tests/integration/cluster_harness.h"

namespace lanlm::testing {
namespace {

using coordinator::TrainingServer;

class ClusterOverlapTest : public CorpusTest {
 protected:
  // A 2-step tiny run and its LocalTrainer fingerprint (reference_); false on failure.
  bool Start() {
    const auto options = TinyOptions(corpus_, 2);
    reference_ = Hex(ReferenceFingerprint(options));
    auto server = TrainingServer::Start(options, GivenFlags{"steps"}, /*handle_signals=*/false);
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    if (!server.ok()) return false;
    server_ = std::move(*server);
    return true;
  }
  // Finishes the run with one real worker; its fingerprint.
  std::string Finish() {
    WorkerGroup workers(server_->port(), 1, 1);
    const auto result = server_->Wait();
    EXPECT_TRUE(result.finished);
    return Hex(result.fingerprint);
  }
  // A lease taken by `raw`, its engine gradient and loss.
  static bool Leased(RawClient& raw, v1::Lease* lease, std::vector<float>* grad, float* loss) {
    if (!raw.TakeLease(lease)) return false;
    *grad = raw.Gradient(*lease, loss);
    return true;
  }

  std::string reference_;
  std::unique_ptr<TrainingServer> server_;
};

TEST_F(ClusterOverlapTest, GradientChunksInAnyOrderAreAccepted) {
  ASSERT_TRUE(Start());
  RawClient raw(server_->port());
  ASSERT_TRUE(raw.Connect());
  const int64_t n = raw.parameter_count();
  for (int lease_number = 0; lease_number < 2; ++lease_number) {
    v1::Lease lease;
    std::vector<float> grad;
    float loss = 0;
    ASSERT_TRUE(Leased(raw, &lease, &grad, &loss));
    auto chunks = protos::MakeChunks(grad.data(), n, 4096);
    ASSERT_GE(chunks.size(), 3u);
    std::reverse(chunks.begin(), chunks.end());  // the checksum is over the send order
    if (lease_number == 1) std::swap(chunks[0], chunks[chunks.size() / 2]);
    const v1::CommitResult result = raw.Send(lease.lease_id(), chunks, n, loss);
    EXPECT_EQ(result.code(), 0) << result.message();
  }
  raw.Close();
  EXPECT_EQ(Finish(), reference_);
}

TEST_F(ClusterOverlapTest, OverlappingDuplicateOrMissingRangesAreRefused) {
  ASSERT_TRUE(Start());
  RawClient raw(server_->port());
  ASSERT_TRUE(raw.Connect());
  const int64_t n = raw.parameter_count();
  v1::Lease lease;
  std::vector<float> grad;
  float loss = 0;

  // The same range twice.
  ASSERT_TRUE(Leased(raw, &lease, &grad, &loss));
  auto chunks = protos::MakeChunks(grad.data(), n, 4096);  // 1024 floats each
  chunks.push_back(chunks[1]);
  v1::CommitResult result = raw.Send(lease.lease_id(), chunks, n, loss);
  EXPECT_EQ(result.code(), grpc::StatusCode::INVALID_ARGUMENT);
  // (received ranges merge: by then [0, n) holds everything)
  EXPECT_NE(result.message().find("chunk [1024, 2048) overlaps [0, "), std::string::npos) << result.message();

  // A range straddling two sent ones.
  ASSERT_TRUE(Leased(raw, &lease, &grad, &loss));
  chunks = protos::MakeChunks(grad.data(), n, 4096);
  auto straddle = protos::MakeChunks(grad.data() + 512, 1024, 4096);
  straddle[0].set_offset(512);
  straddle[0].set_total(n);
  chunks.insert(chunks.begin() + 2, straddle[0]);
  result = raw.Send(lease.lease_id(), chunks, n, loss);
  EXPECT_EQ(result.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(result.message().find("[512, 1536) overlaps [0, 2048)"), std::string::npos) << result.message();

  // A gap: the commit names where it starts.
  ASSERT_TRUE(Leased(raw, &lease, &grad, &loss));
  chunks = protos::MakeChunks(grad.data(), n, 4096);
  chunks.erase(chunks.begin() + 2);
  result = raw.Send(lease.lease_id(), chunks, n, loss);
  EXPECT_EQ(result.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(result.message().find("first missing is at offset 2048"), std::string::npos) << result.message();
  raw.Close();
  EXPECT_EQ(Finish(), reference_);
}

TEST_F(ClusterOverlapTest, WorkerGoneWhileItsParametersArriveIsRecomputedInFull) {
  ASSERT_TRUE(Start());
  {
    RawClient crasher(server_->port());
    ASSERT_TRUE(crasher.Connect());
    ASSERT_TRUE(crasher.AskLease());
    v1::CoordinatorMessage message;
    ASSERT_TRUE(crasher.Read(&message));
    ASSERT_TRUE(message.has_lease()) << "protocol 6 sends the lease before its parameters";
    crasher.Cancel();  // like a killed process, before its parameters have arrived
  }
  EXPECT_EQ(Finish(), reference_);
}

TEST_F(ClusterOverlapTest, WorkerGoneWithItsGradientHalfSentIsRecomputedInFull) {
  ASSERT_TRUE(Start());
  {
    RawClient crasher(server_->port());
    ASSERT_TRUE(crasher.Connect());
    v1::Lease lease;
    std::vector<float> grad;
    float loss = 0;
    ASSERT_TRUE(Leased(crasher, &lease, &grad, &loss));
    const int64_t n = crasher.parameter_count();
    auto chunks = protos::MakeChunks(grad.data(), n, 4096);
    chunks.resize(chunks.size() / 2);
    std::reverse(chunks.begin(), chunks.end());  // the end of the block first, as a worker sends it
    crasher.SendChunks(lease.lease_id(), chunks);
    crasher.Cancel();
  }
  EXPECT_EQ(Finish(), reference_);
}

TEST_F(ClusterOverlapTest, StreamingWorkersMatchWithMultiShardLeasesInBothWireFormats) {
  auto options = TinyOptions(corpus_, 3);
  options.shards = 5;  // blocks [0,2), [2,4) and the clipped [4,5)
  options.shards_per_lease = 2;
  const std::string reference = Hex(ReferenceFingerprint(options));
  const auto fp32 = TrainWithWorkers(options, 2);
  ASSERT_TRUE(fp32.finished);
  EXPECT_EQ(Hex(fp32.fingerprint), reference);
  options.wire = "bf16";
  const auto one = TrainWithWorkers(options, 1);
  const auto three = TrainWithWorkers(options, 3);
  ASSERT_TRUE(one.finished && three.finished);
  EXPECT_EQ(Hex(three.fingerprint), Hex(one.fingerprint));
}

}  // namespace
}  // namespace lanlm::testing
