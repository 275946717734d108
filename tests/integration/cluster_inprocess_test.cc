// In-process cluster tests (coordinator + Worker objects on localhost:0 in this process):
// bit-identical fingerprints against the engine's LocalTrainer for 1 and 3 workers, lease
// re-issue after a stall or a broken stream, each bad input answered with its code while
// training goes on, resume from a checkpoint, graceful stop and --min-workers.
#include <chrono>
#include <fstream>
#include <iterator>
#include <limits>

#include "coordinator/serve_server.h"
#include "engine/io/checkpoint.h"
#include "protos/status.grpc.pb.h"
#include "tests/integration/cluster_harness.h"

namespace lanlm::testing {
namespace {

using coordinator::TrainingServer;

std::unique_ptr<TrainingServer> StartServer(const coordinator::CoordinatorOptions& options) {
  auto server = TrainingServer::Start(options, GivenFlags{"steps"}, /*handle_signals=*/false);
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(*server) : nullptr;
}

class ClusterTest : public CorpusTest {};

TEST_F(ClusterTest, OneWorkerMatchesLocalTrainer) {
  const auto options = TinyOptions(corpus_, 3);
  const uint64_t reference = ReferenceFingerprint(options);
  auto server = StartServer(options);
  ASSERT_TRUE(server);
  WorkerGroup workers(server->port(), 1, 1);
  const auto result = server->Wait();
  workers.JoinAll();
  EXPECT_TRUE(result.finished);
  EXPECT_EQ(result.step, 3);
  EXPECT_EQ(Hex(result.fingerprint), Hex(reference));
  EXPECT_TRUE(workers.status(0).ok()) << workers.status(0).ToString();
  EXPECT_EQ(workers.worker(0).stats().accepted, 12);  // 3 steps x 4 shards, all by this worker
}

TEST_F(ClusterTest, ThreeWorkersWithDifferentThreadCountsMatchLocalTrainer) {
  auto options = TinyOptions(corpus_, 3);
  options.shards = 5;  // an odd shard count exercises the tree's carried node
  const uint64_t reference = ReferenceFingerprint(options);
  auto server = StartServer(options);
  ASSERT_TRUE(server);
  WorkerGroup workers(server->port(), 0, 1);
  workers.Add(server->port(), 1);
  workers.Add(server->port(), 2);
  workers.Add(server->port(), 3);
  const auto result = server->Wait();
  workers.JoinAll();
  EXPECT_EQ(Hex(result.fingerprint), Hex(reference));
  int64_t accepted = 0;
  for (int i = 0; i < 3; ++i) accepted += workers.worker(i).stats().accepted;
  EXPECT_EQ(accepted, 15);  // every (step, shard) applied exactly once
}

TEST_F(ClusterTest, MultiShardLeasesMatchLocalTrainer) {
  // Blocks of 4 and of 2 over 7 shards (the last block clipped), workers pre-summing each
  // block: the parameters are those of one-shard leases and of the single-process trainer.
  auto options = TinyOptions(corpus_, 3);
  options.shards = 7;
  const uint64_t reference = ReferenceFingerprint(options);
  for (int per_lease : {4, 2}) {
    options.shards_per_lease = per_lease;
    auto server = StartServer(options);
    ASSERT_TRUE(server);
    WorkerGroup workers(server->port(), 0, 1);
    workers.Add(server->port(), 1);
    workers.Add(server->port(), 2);
    const auto result = server->Wait();
    workers.JoinAll();
    EXPECT_TRUE(result.finished);
    EXPECT_EQ(Hex(result.fingerprint), Hex(reference)) << "shards_per_lease " << per_lease;
    int64_t accepted = 0;
    for (int i = 0; i < 2; ++i) accepted += workers.worker(i).stats().accepted;
    EXPECT_EQ(accepted, 3 * ((7 + per_lease - 1) / per_lease));  // one commit per block
  }
  options.shards_per_lease = 3;
  EXPECT_EQ(TrainingServer::Start(options, GivenFlags{"steps"}, false).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ClusterTest, MultiShardCommitNeedsOneFiniteLossPerShard) {
  auto options = TinyOptions(corpus_, 1);
  options.shards_per_lease = 2;
  const uint64_t reference = ReferenceFingerprint(options);
  auto server = StartServer(options);
  ASSERT_TRUE(server);
  RawClient raw(server->port());
  ASSERT_TRUE(raw.Connect());
  const int64_t n = raw.parameter_count();
  const std::vector<float> zeros(static_cast<size_t>(n), 0.0f);
  v1::Lease lease;
  ASSERT_TRUE(raw.TakeLease(&lease));
  EXPECT_EQ(lease.shard_count(), 2);
  EXPECT_EQ(raw.Send(lease.lease_id(), protos::MakeChunks(zeros.data(), n), n, 1.0f).code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // no shard_losses
  ASSERT_TRUE(raw.TakeLease(&lease));
  EXPECT_EQ(raw.Send(lease.lease_id(), protos::MakeChunks(zeros.data(), n), n, 1.0f, std::nullopt,
                     {1.0f, std::numeric_limits<float>::quiet_NaN()})
                .code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  raw.Close();
  WorkerGroup workers(server->port(), 1, 1);
  const auto result = server->Wait();
  EXPECT_EQ(Hex(result.fingerprint), Hex(reference));  // nothing of the rejected commits applied
}

TEST_F(ClusterTest, BadInputGetsItsCodeAndTrainingGoesOn) {
  const auto options = TinyOptions(corpus_, 2);
  const uint64_t reference = ReferenceFingerprint(options);
  auto server = StartServer(options);
  ASSERT_TRUE(server);
  RawClient raw(server->port());

  v1::JoinReply reply;
  EXPECT_EQ(raw.Join({}, &reply, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(raw.Join({}, &reply, "wrong-token").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(raw.OpenStreamWithToken("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::JoinRequest bad_version;
  bad_version.set_protocol_version(99);
  EXPECT_EQ(raw.Join(bad_version, &reply).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  v1::JoinRequest bad_config;
  bad_config.set_model_config_hash(0x1234);
  const grpc::Status config_status = raw.Join(bad_config, &reply);
  EXPECT_EQ(config_status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(config_status.error_message().find("0x0000000000001234"), std::string::npos)
      << config_status.error_message();
  EXPECT_NE(config_status.error_message().find("(coordinator"), std::string::npos);
  v1::JoinRequest bad_tokenizer;
  bad_tokenizer.set_tokenizer_hash(0x77);
  EXPECT_EQ(raw.Join(bad_tokenizer, &reply).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(raw.OpenStreamWithToken(kTestToken).error_code(), grpc::StatusCode::NOT_FOUND);  // no Join

  ASSERT_TRUE(raw.Connect());
  const int64_t n = raw.parameter_count();
  v1::Lease lease;
  ASSERT_TRUE(raw.TakeLease(&lease));
  EXPECT_EQ(lease.step(), 0);
  float loss = 0;
  const std::vector<float> grad = raw.Gradient(lease, &loss);

  // A commit for a lease never issued.
  EXPECT_EQ(raw.Send(lease.lease_id() + 1000, protos::MakeChunks(grad.data(), n), n, loss).code(),
            grpc::StatusCode::NOT_FOUND);
  // A gradient of the wrong size.
  std::vector<float> longer = grad;
  longer.push_back(0.0f);
  EXPECT_EQ(raw.Send(lease.lease_id(), protos::MakeChunks(longer.data(), n + 1), n + 1, loss).code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // That failure released the lease: it is gone for good.
  EXPECT_EQ(raw.Send(lease.lease_id(), protos::MakeChunks(grad.data(), n), n, loss).code(), grpc::StatusCode::ABORTED);

  // A corrupt chunk.
  ASSERT_TRUE(raw.TakeLease(&lease));
  auto chunks = protos::MakeChunks(grad.data(), n, 4096);
  ASSERT_GE(chunks.size(), 2u);
  std::string data = chunks[1].data();
  data[17] ^= 0x01;
  chunks[1].set_data(data);
  EXPECT_EQ(raw.Send(lease.lease_id(), chunks, n, loss).code(), grpc::StatusCode::DATA_LOSS);
  // A wrong commit checksum.
  ASSERT_TRUE(raw.TakeLease(&lease));
  const std::vector<float> grad0 = raw.Gradient(lease, &loss);
  EXPECT_EQ(raw.Send(lease.lease_id(), protos::MakeChunks(grad0.data(), n), n, loss, 12345u).code(),
            grpc::StatusCode::DATA_LOSS);
  // A correct commit, then the same again: applied once, the duplicate ABORTED.
  ASSERT_TRUE(raw.TakeLease(&lease));
  const std::vector<float> good = raw.Gradient(lease, &loss);
  EXPECT_EQ(raw.Send(lease.lease_id(), protos::MakeChunks(good.data(), n), n, loss).code(), 0);
  EXPECT_EQ(raw.Send(lease.lease_id(), protos::MakeChunks(good.data(), n), n, loss).code(), grpc::StatusCode::ABORTED);
  raw.Close();

  // Training goes on with a real worker, to the undisturbed result.
  WorkerGroup workers(server->port(), 1, 1);
  const auto result = server->Wait();
  EXPECT_EQ(Hex(result.fingerprint), Hex(reference));
}

TEST_F(ClusterTest, StalledLeaseIsReissuedAndItsLateCommitAborted) {
  auto options = TinyOptions(corpus_, 2);
  options.lease_timeout_ms = 300;
  const uint64_t reference = ReferenceFingerprint(options);
  auto server = StartServer(options);
  ASSERT_TRUE(server);

  RawClient staller(server->port());
  ASSERT_TRUE(staller.Connect());
  v1::Lease stalled;
  ASSERT_TRUE(staller.TakeLease(&stalled));
  float loss = 0;
  const std::vector<float> grad = staller.Gradient(stalled, &loss);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // past the deadline

  RawClient second(server->port());
  ASSERT_TRUE(second.Connect());
  v1::Lease again;
  ASSERT_TRUE(second.TakeLease(&again));
  EXPECT_EQ(again.step(), stalled.step());
  EXPECT_EQ(again.shard(), stalled.shard());  // the same shard, under a new lease
  EXPECT_NE(again.lease_id(), stalled.lease_id());
  const int64_t n = staller.parameter_count();
  EXPECT_EQ(second.Send(again.lease_id(), protos::MakeChunks(grad.data(), n), n, loss).code(), 0);
  EXPECT_EQ(staller.Send(stalled.lease_id(), protos::MakeChunks(grad.data(), n), n, loss).code(),
            grpc::StatusCode::ABORTED);
  staller.Close();
  second.Close();

  WorkerGroup workers(server->port(), 1, 1);
  const auto result = server->Wait();
  EXPECT_EQ(Hex(result.fingerprint), Hex(reference));
}

TEST_F(ClusterTest, BrokenStreamReturnsItsLeaseAtOnce) {
  const auto options = TinyOptions(corpus_, 2);
  const uint64_t reference = ReferenceFingerprint(options);
  auto server = StartServer(options);
  ASSERT_TRUE(server);
  {
    RawClient crasher(server->port());
    ASSERT_TRUE(crasher.Connect());
    v1::Lease lease;
    ASSERT_TRUE(crasher.TakeLease(&lease));
    crasher.Cancel();  // like a killed process: the stream breaks mid-lease
  }
  WorkerGroup workers(server->port(), 1, 1);
  const auto result = server->Wait();  // the 20 s lease timeout would make this slow if not re-issued
  workers.JoinAll();                   // the last CommitResult reaches the worker before it exits
  EXPECT_EQ(Hex(result.fingerprint), Hex(reference));
  EXPECT_EQ(workers.worker(0).stats().accepted, 8);
}

TEST_F(ClusterTest, ResumeFromCheckpointContinuesBitIdentically) {
  auto options = TinyOptions(corpus_, 4);
  const uint64_t reference = ReferenceFingerprint(options);
  options.stop_after = 2;  // the schedule still ends at step 4
  options.checkpoint_dir = dir_ + "/ckpt";
  {
    auto server = StartServer(options);
    ASSERT_TRUE(server);
    WorkerGroup workers(server->port(), 1, 1);
    const auto result = server->Wait();
    ASSERT_EQ(result.step, 2);
    ASSERT_FALSE(result.checkpoint.empty());
    auto checkpoint = engine::LoadCheckpoint(result.checkpoint);
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
    EXPECT_EQ(checkpoint->step, 2);
    options.resume = result.checkpoint;
  }
  options.stop_after = 0;
  options.checkpoint_dir.clear();
  auto server = StartServer(options);
  ASSERT_TRUE(server);
  WorkerGroup workers(server->port(), 2, 1);
  const auto result = server->Wait();
  EXPECT_EQ(result.step, 4);
  EXPECT_EQ(Hex(result.fingerprint), Hex(reference));
}

TEST_F(ClusterTest, ResumeOnAnotherCorpusIsRefusedUnlessAllowed) {
  auto options = TinyOptions(corpus_, 2);
  options.checkpoint_dir = dir_ + "/ckpt-corpus";
  std::string checkpoint;
  {
    auto server = StartServer(options);
    ASSERT_TRUE(server);
    WorkerGroup workers(server->port(), 1, 1);
    checkpoint = server->Wait().checkpoint;
  }
  ASSERT_FALSE(checkpoint.empty());
  auto saved = engine::LoadCheckpoint(checkpoint);
  ASSERT_TRUE(saved.ok());
  EXPECT_NE(saved->corpus_hash, 0u);
  std::string text;
  {
    std::ifstream in(corpus_);
    std::getline(in, text);  // drop the first line: another text
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string other = dir_ + "/other.txt";
  std::ofstream(other) << text;
  options.corpus = other;
  options.resume = checkpoint;
  options.steps = 3;
  options.checkpoint_dir.clear();
  const auto refused = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("--allow-corpus-change"), std::string::npos) << refused.status().ToString();
  options.allow_corpus_change = true;
  auto server = StartServer(options);
  ASSERT_TRUE(server);
  WorkerGroup workers(server->port(), 1, 1);
  EXPECT_EQ(server->Wait().step, 3);
}

TEST_F(ClusterTest, WaitsForMinWorkersAndStopsGracefully) {
  auto options = TinyOptions(corpus_, 1000);
  options.min_workers = 2;
  options.checkpoint_dir = dir_ + "/ckpt";
  auto server = StartServer(options);
  ASSERT_TRUE(server);
  WorkerGroup workers(server->port(), 1, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(server->run().status().step, 0);  // one worker is not enough
  EXPECT_EQ(server->run().status().workers, 1);
  workers.Add(server->port(), 1);
  for (int i = 0; i < 2000 && server->run().status().step < 2; ++i) {  // up to 20 s on a loaded machine
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(server->run().status().step, 2);

  // ClusterStatus over gRPC.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()), grpc::InsecureChannelCredentials());
  auto status_stub = v1::ClusterStatus::NewStub(channel);
  grpc::ClientContext context;
  v1::GetStatusReply reply;
  ASSERT_TRUE(status_stub->GetStatus(&context, {}, &reply).ok());
  EXPECT_EQ(reply.mode(), "training");
  EXPECT_EQ(reply.total_steps(), 1000);
  EXPECT_EQ(reply.workers(), 2);
  EXPECT_EQ(reply.fingerprint().size(), 16u);
  ASSERT_EQ(reply.worker_list_size(), 2);
  for (const v1::WorkerStatus& w : reply.worker_list()) {
    EXPECT_TRUE(w.connected()) << w.id();
    EXPECT_EQ(w.params_from(), "coordinator") << w.id();  // no relay here
    EXPECT_GE(w.leases(), 1) << w.id();
  }

  server->Stop("test");
  const auto result = server->Wait();
  EXPECT_FALSE(result.finished);
  ASSERT_FALSE(result.checkpoint.empty());
  auto checkpoint = engine::LoadCheckpoint(result.checkpoint);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  EXPECT_EQ(checkpoint->step, result.step);
  workers.StopAll();  // told "not finished", they would reconnect; stop them
}

TEST_F(ClusterTest, SecondCoordinatorOnTheSamePortFailsToStart) {
  auto options = TinyOptions(corpus_, 1);
  auto first = StartServer(options);
  ASSERT_TRUE(first);
  options.listen = "127.0.0.1:" + std::to_string(first->port());
  auto second = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  first->Stop("test");
  first->Wait();
}

TEST_F(ClusterTest, ServeModeReportsTheCheckpoint) {
  auto options = TinyOptions(corpus_, 2);
  options.checkpoint_dir = dir_ + "/ckpt";
  std::string checkpoint;
  uint64_t fingerprint = 0;
  {
    auto server = StartServer(options);
    ASSERT_TRUE(server);
    WorkerGroup workers(server->port(), 1, 1);
    const auto result = server->Wait();
    checkpoint = result.checkpoint;
    fingerprint = result.fingerprint;
  }
  ASSERT_FALSE(checkpoint.empty());
  auto served = coordinator::ServeServer::Start(checkpoint, "127.0.0.1:0", 1, false, nullptr);
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string((*served)->port()), grpc::InsecureChannelCredentials());
  auto stub = v1::ClusterStatus::NewStub(channel);
  grpc::ClientContext context;
  v1::GetStatusReply reply;
  ASSERT_TRUE(stub->GetStatus(&context, {}, &reply).ok());
  EXPECT_EQ(reply.mode(), "serving");
  EXPECT_EQ(reply.step(), 2);
  EXPECT_EQ(reply.fingerprint(), Hex(fingerprint));
  // No training here: the Cluster service is absent.
  RawClient raw((*served)->port());
  v1::JoinReply join;
  EXPECT_EQ(raw.Join({}, &join).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  (*served)->Stop("test");
  (*served)->Wait();
  EXPECT_EQ(
      coordinator::ServeServer::Start(dir_ + "/missing.safetensors", "127.0.0.1:0", 1, false, nullptr).status().code(),
      StatusCode::kNotFound);
}

}  // namespace
}  // namespace lanlm::testing
