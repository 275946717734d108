// Trust tests of the cluster (issue 12): a worker that outlives one run never reuses that
// run's parameters in the next run, whatever step numbers the two share; no checkpoint is
// lost silently; a diverged run stops with an error instead of training on.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "coordinator/generate_service.h"
#include "engine/io/checkpoint.h"
#include "protos/generate.grpc.pb.h"
#include "tests/integration/cluster_harness.h"
#include "tests/support/raw_call.h"

namespace lanlm::testing {
namespace {

using coordinator::TrainingServer;

class ClusterTrustTest : public CorpusTest {};

// Run A (seed 1, 1 step) leaves the worker holding version 0 of A; run B (seed 2) on the same
// port starts at version 0 too. Keyed by step alone, the worker claimed it held B's version 0
// and B trained on A's parameters; keyed by (run id, version) B ends on its own fingerprint.
TEST_F(ClusterTrustTest, KeepRunningWorkerNeverReusesAnotherRunsParameters) {
  auto run_a = TinyOptions(corpus_, 1);
  run_a.seed = 1;
  auto first = TrainingServer::Start(run_a, GivenFlags{"steps"}, /*handle_signals=*/false);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const int port = (*first)->port();
  WorkerGroup workers(port, 0, 1);
  workers.Add(port, 1, /*exit_when_finished=*/false);
  const auto result_a = (*first)->Wait();
  ASSERT_TRUE(result_a.finished);
  first->reset();

  auto run_b = TinyOptions(corpus_, 2);
  run_b.seed = 2;
  run_b.listen = "127.0.0.1:" + std::to_string(port);
  const uint64_t reference = ReferenceFingerprint(run_b);
  auto second = TrainingServer::Start(run_b, GivenFlags{"steps"}, false);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  const auto result_b = (*second)->Wait();
  workers.StopAll();
  EXPECT_TRUE(result_b.finished);
  EXPECT_EQ(Hex(result_b.fingerprint), Hex(reference));
  EXPECT_GE(workers.worker(0).stats().sessions, 2);  // the same worker served both runs
}

// The run id is random per run and kept in checkpoints across resume.
TEST_F(ClusterTrustTest, RunIdIsFreshPerRunAndKeptAcrossResume) {
  auto options = TinyOptions(corpus_, 2);
  options.stop_after = 1;
  options.checkpoint_dir = dir_ + "/ckpt";
  auto a = coordinator::PrepareRun(options, GivenFlags{"steps"});
  auto b = coordinator::PrepareRun(options, GivenFlags{"steps"});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(engine::IsRunId(a->run_id)) << a->run_id;
  EXPECT_NE(a->run_id, b->run_id);

  auto server = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const std::string run_id = (*server)->run().run_id();
  WorkerGroup workers((*server)->port(), 1, 1);
  const auto result = (*server)->Wait();
  ASSERT_FALSE(result.checkpoint.empty());
  auto checkpoint = engine::LoadCheckpoint(result.checkpoint);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  EXPECT_EQ(checkpoint->run_id, run_id);
  options.resume = result.checkpoint;
  auto resumed = coordinator::PrepareRun(options, GivenFlags{"steps"});
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(resumed->run_id, run_id);
  workers.StopAll();
}

TEST_F(ClusterTrustTest, JoinReplyCarriesTheRunId) {
  auto options = TinyOptions(corpus_, 1);
  auto server = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  RawClient client((*server)->port());
  v1::JoinReply reply;
  ASSERT_TRUE(client.Join({}, &reply).ok());
  EXPECT_EQ(reply.run_id(), (*server)->run().run_id());
  EXPECT_TRUE(engine::IsRunId(reply.run_id()));
  (*server)->Stop("test");
  (*server)->Wait();
}

// A worker id is bound to the one Work stream that first says Hello with it: a second stream
// (another token holder) cannot speak for it.
TEST_F(ClusterTrustTest, WorkerIdCannotBeClaimedTwice) {
  auto server = TrainingServer::Start(TinyOptions(corpus_, 1000), GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  RawClient owner((*server)->port());
  ASSERT_TRUE(owner.Connect());
  ASSERT_EQ(owner.reply().worker_id(), "w1");
  // Connect's Hello is only buffered: wait until the coordinator has bound w1 to the owner's
  // stream, or the impostor's Hello may arrive first and be the one accepted.
  const auto bound_by = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((*server)->run().status().workers < 1 && std::chrono::steady_clock::now() < bound_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ((*server)->run().status().workers, 1);
  RawClient impostor((*server)->port());
  const grpc::Status refused = impostor.OpenStreamWithToken(kTestToken);  // Hello as "w1"
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(refused.error_message().find("w1 already has a Work stream"), std::string::npos)
      << refused.error_message();
  owner.Close();
  (*server)->Stop("test");
  (*server)->Wait();
}

// A prompt above --generate-max-prompt-bytes but also above the cluster's gRPC receive limit
// (4.25 MiB) reaches the Generate service, which refuses it naming the flag, instead of gRPC's
// anonymous "received message larger than max".
// Bytes that are not a WorkerMessage, first or after a valid Hello, end the Work stream with
// INVALID_ARGUMENT naming the message type (not gRPC's INTERNAL or a silent close), and the
// run goes on.
TEST_F(ClusterTrustTest, WorkMessagesThatDoNotParseAreInvalidArgument) {
  auto options = TinyOptions(corpus_, 1);
  auto server = coordinator::TrainingServer::Start(options, GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const std::string address = "127.0.0.1:" + std::to_string((*server)->port());
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  const std::multimap<std::string, std::string> token = {{protos::kTokenMetadataKey, kTestToken}};
  const std::string garbage("\xff\xff\xff\xff\x0f\x01", 6);
  const RawResult first = RawCall(channel, "/lanlm.v1.Cluster/Work", {garbage}, token);
  EXPECT_EQ(first.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << first.status.error_message();
  EXPECT_NE(first.status.error_message().find("malformed lanlm.v1.WorkerMessage"), std::string::npos)
      << first.status.error_message();

  RawClient raw((*server)->port());
  v1::JoinReply reply;
  ASSERT_TRUE(raw.Join(v1::JoinRequest(), &reply).ok());
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(reply.worker_id());
  const RawResult later = RawCall(channel, "/lanlm.v1.Cluster/Work", {hello.SerializeAsString(), garbage}, token);
  EXPECT_EQ(later.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << later.status.error_message();
  EXPECT_NE(later.status.error_message().find("malformed lanlm.v1.WorkerMessage"), std::string::npos)
      << later.status.error_message();

  WorkerGroup workers((*server)->port(), 1, 1);
  EXPECT_TRUE((*server)->Wait().finished);
}

TEST_F(ClusterTrustTest, OversizedPromptIsRefusedNamingTheFlag) {
  coordinator::GenerateServiceOptions generate_options;
  generate_options.max_prompt_bytes = 5 << 20;
  const coordinator::ExtraServices extras = [&](coordinator::SnapshotSource snapshots, engine::ThreadPool& pool) {
    coordinator::Extras out;
    auto service = std::make_unique<coordinator::GenerateService>(std::move(snapshots), generate_options, pool);
    out.before_shutdown = [raw = service.get()] { raw->Shutdown(); };
    out.services.push_back(std::move(service));
    out.max_receive_bytes = static_cast<int>(generate_options.max_prompt_bytes + (64 << 10));
    return out;
  };
  auto server = TrainingServer::Start(TinyOptions(corpus_, 1000), GivenFlags{"steps"}, false, extras);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(-1);
  auto stub = v1::Generate::NewStub(grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string((*server)->port()), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext context;
  auto stream = stub->Generate(&context);
  v1::GenerateRequest request;
  request.mutable_start()->set_prompt(std::string((5 << 20) + 1, 'a'));
  stream->Write(request);
  stream->WritesDone();
  v1::GenerateEvent event;
  while (stream->Read(&event)) {
  }
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("--generate-max-prompt-bytes"), std::string::npos) << status.error_message();
  (*server)->Stop("test");
  (*server)->Wait();
}

TEST_F(ClusterTrustTest, CheckpointDirThatIsNotAFolderIsRefusedBeforeTraining) {
  auto options = TinyOptions(corpus_, 2);
  options.checkpoint_dir = dir_ + "/a-file";
  std::ofstream(options.checkpoint_dir) << "x";
  auto server = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(server.status().message().find("--checkpoint-dir " + options.checkpoint_dir), std::string::npos)
      << server.status().ToString();
}

// The folder turns into a file after the start-up check: every checkpoint fails, is counted in
// the status, and the run ends with an error naming the folder and the last good checkpoint.
TEST_F(ClusterTrustTest, LostFinalCheckpointFailsTheRun) {
  auto options = TinyOptions(corpus_, 3);
  options.checkpoint_dir = dir_ + "/ckpt";
  options.checkpoint_every = 1;
  auto server = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  std::filesystem::remove_all(options.checkpoint_dir);
  std::ofstream(options.checkpoint_dir) << "not a folder";
  WorkerGroup workers((*server)->port(), 1, 1);
  const auto result = (*server)->Wait();
  EXPECT_EQ(result.step, 3);
  EXPECT_TRUE(result.checkpoint.empty());
  EXPECT_NE(result.error.find("--checkpoint-dir " + options.checkpoint_dir), std::string::npos) << result.error;
  EXPECT_NE(result.error.find("last good checkpoint: none"), std::string::npos) << result.error;
  const auto status = (*server)->run().status();
  EXPECT_EQ(status.mode, "failed");
  EXPECT_EQ(status.checkpoint_failures, 3);  // steps 1 and 2 (periodic, step 2 a retry), then the final one
  EXPECT_FALSE(status.checkpoint_error.empty());
}

// Corrupt optimizer state (negative second moments) makes the first update non-finite: the run
// stops with an error, writes no checkpoint of the bad state and names the last good one.
TEST_F(ClusterTrustTest, NonFiniteUpdateStopsTheRun) {
  auto options = TinyOptions(corpus_, 4);
  auto setup = coordinator::PrepareRun(options, GivenFlags{"steps"});
  ASSERT_TRUE(setup.ok()) << setup.status().ToString();
  engine::Checkpoint bad;
  bad.config = setup->state.config;
  bad.seed = setup->train.seed;
  bad.training = setup->train.ToMap();
  bad.tokenizer = setup->tokenizer->Serialize();
  bad.params = setup->state.params;
  bad.adam_m = setup->state.adam_m;
  bad.adam_v.assign(bad.params.size(), -1.0f);
  bad.step = 1;
  const std::string path = dir_ + "/bad.safetensors";
  ASSERT_TRUE(engine::SaveCheckpoint(path, bad).ok());
  options.resume = path;
  options.checkpoint_dir = dir_ + "/ckpt";
  auto server = TrainingServer::Start(options, GivenFlags{"steps"}, false);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  WorkerGroup workers((*server)->port(), 1, 1);
  const auto result = (*server)->Wait();
  workers.StopAll();
  EXPECT_FALSE(result.finished);
  EXPECT_NE(result.error.find("diverged at step 1"), std::string::npos) << result.error;
  EXPECT_NE(result.error.find("last good checkpoint: none"), std::string::npos) << result.error;
  EXPECT_TRUE(result.checkpoint.empty());
  // No checkpoint of the diverged state (the folder may hold the run's history.jsonl).
  for (const auto& entry : std::filesystem::directory_iterator(options.checkpoint_dir)) {
    EXPECT_NE(entry.path().extension(), ".safetensors") << entry.path();
  }
}

}  // namespace
}  // namespace lanlm::testing
