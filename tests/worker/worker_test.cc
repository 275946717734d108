// Tests of the worker against a scripted fake coordinator (a synchronous Cluster service in
// this process): the gradient it streams back equals the engine's ComputeShardGradient bit for
// bit with valid chunk CRCs and commit checksum; it gives up on UNAUTHENTICATED; it retries
// after UNAVAILABLE; it stops promptly while backing off; it exits on a finished shutdown.
#include "worker/worker.h"

#include <atomic>
#include <cstring>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "engine/model/parameters.h"
#include "engine/train/trainer.h"
#include "protos/cluster.grpc.pb.h"
#include "protos/convert.h"
#include "tests/support/tiny.h"

namespace lanlm::worker {
namespace {

// This suite's model sizes (tests/support/tiny.h).
constexpr test_support::TinySizes kSizes = {.vocab = 40, .dim = 16, .layers = 1, .ffn = 32};
constexpr int kB = 2;
constexpr char kRunId[] = "0123456789abcdef0123456789abcdef";

class FakeCoordinator final : public v1::Cluster::Service {
 public:
  std::atomic<int> unavailable_joins{0};  // answer this many Joins with UNAVAILABLE first
  std::atomic<bool> deny{false};          // answer Join with UNAUTHENTICATED
  std::atomic<int> joins{0};
  std::vector<float> params;
  std::vector<int32_t> tokens;
  // Filled by Work:
  std::vector<float> received;
  v1::Commit commit;
  uint32_t chunks_crc = 0;
  Status chunk_status;

  grpc::Status Join(grpc::ServerContext*, const v1::JoinRequest* request, v1::JoinReply* reply) override {
    ++joins;
    if (deny) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong cluster token");
    if (unavailable_joins > 0) {
      --unavailable_joins;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not yet");
    }
    EXPECT_EQ(request->protocol_version(), static_cast<uint32_t>(v1::PROTOCOL_VERSION_CURRENT));
    reply->set_worker_id("w1");
    protos::ToProto(test_support::TinyConfig(kSizes), reply->mutable_model_config());
    reply->set_model_config_hash(test_support::TinyConfig(kSizes).Hash());
    reply->set_micro_batch(kB);
    reply->set_parameter_count(engine::ParameterCount(test_support::TinyConfig(kSizes)));
    reply->set_max_chunk_bytes(protos::kMaxChunkBytes);
    reply->set_run_id(kRunId);
    return grpc::Status::OK;
  }

  grpc::Status Work(grpc::ServerContext*,
                    grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::WorkerMessage>* stream) override {
    v1::WorkerMessage in;
    EXPECT_TRUE(stream->Read(&in) && in.has_hello());
    EXPECT_EQ(in.hello().cached_run_id(), "");  // a fresh worker holds no run's parameters
    EXPECT_TRUE(stream->Read(&in) && in.has_lease_request());
    v1::CoordinatorMessage out;
    // Protocol 6: one lease, then its parameters in small chunks (exercises reassembly while
    // the worker computes).
    v1::Lease* lease = out.mutable_lease();
    lease->set_step(5);
    lease->set_run_id(kRunId);
    lease->set_shard(1);
    lease->set_lease_id(42);
    lease->set_micro_batch(kB);
    protos::TokensToProto(tokens.data(), static_cast<int64_t>(tokens.size()), lease);
    stream->Write(out);
    for (auto& chunk : protos::MakeChunks(params.data(), static_cast<int64_t>(params.size()), 1024)) {
      out.Clear();
      out.mutable_param_chunk()->set_version(5);
      out.mutable_param_chunk()->set_run_id(kRunId);
      *out.mutable_param_chunk()->mutable_chunk() = std::move(chunk);
      stream->Write(out);
    }
    // Gradient chunks come as the backward pass finishes them: classifier first.
    protos::ChunkAssembler assembler(static_cast<int64_t>(params.size()), protos::kMaxChunkBytes,
                                     engine::WireFormat::kFp32, engine::ChunkOrder::kAnyOrder);
    while (stream->Read(&in)) {
      if (in.has_gradient_chunk()) {
        EXPECT_EQ(in.gradient_chunk().lease_id(), 42);
        if (chunk_status.ok()) chunk_status = assembler.Add(in.gradient_chunk().chunk());
      } else if (in.has_commit()) {
        commit = in.commit();
        chunks_crc = assembler.crc32c();
        received = assembler.Take();
      } else if (in.has_lease_request()) {
        EXPECT_EQ(in.lease_request().cached_version(), 5);
        out.Clear();
        out.mutable_shutdown()->set_reason("done");
        out.mutable_shutdown()->set_finished(true);
        stream->Write(out);
        return grpc::Status::OK;
      }
    }
    return grpc::Status::OK;
  }
};

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const engine::ModelConfig config = test_support::TinyConfig(kSizes);
    fake_.params.resize(static_cast<size_t>(engine::ParameterCount(config)));
    engine::InitParameters(config, 3, 0.02f, fake_.params.data());
    for (int i = 0; i < kB * (config.context + 1); ++i) fake_.tokens.push_back((i * 7 + 3) % config.vocab_size);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_);
  }
  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now()); }

  WorkerOptions Options() const {
    WorkerOptions options;
    options.coordinator = "127.0.0.1:" + std::to_string(port_);
    options.token = "t";
    options.min_backoff = std::chrono::milliseconds(10);
    options.max_backoff = std::chrono::milliseconds(20);
    return options;
  }

  FakeCoordinator fake_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(WorkerTest, StreamsTheEngineGradientBitExactly) {
  engine::ThreadPool pool(2);
  Worker worker(Options(), pool);
  ASSERT_TRUE(worker.Run().ok());  // returns on the finished shutdown

  // Independent reference: the engine on the same parameters and tokens, one thread.
  engine::ThreadPool one(1);
  engine::Model model(test_support::TinyConfig(kSizes), kB);
  std::vector<float> grad(fake_.params.size());
  const float loss = engine::ComputeShardGradient(model, fake_.params.data(), fake_.tokens.data(), kB, grad.data(), one);
  ASSERT_TRUE(fake_.chunk_status.ok()) << fake_.chunk_status.ToString();
  ASSERT_EQ(fake_.received.size(), grad.size());
  EXPECT_EQ(std::memcmp(fake_.received.data(), grad.data(), grad.size() * 4), 0);
  EXPECT_EQ(fake_.commit.lease_id(), 42);
  EXPECT_EQ(fake_.commit.floats(), static_cast<int64_t>(grad.size()));
  EXPECT_EQ(fake_.commit.crc32c(), fake_.chunks_crc);
  EXPECT_EQ(fake_.commit.loss(), loss);
  EXPECT_EQ(worker.stats().leases, 1);
}

TEST_F(WorkerTest, GivesUpWhenRefused) {
  fake_.deny = true;
  engine::ThreadPool pool(1);
  Worker worker(Options(), pool);
  EXPECT_EQ(worker.Run().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(fake_.joins, 1);
}

TEST_F(WorkerTest, RetriesWhileUnavailable) {
  fake_.unavailable_joins = 3;
  engine::ThreadPool pool(1);
  Worker worker(Options(), pool);
  ASSERT_TRUE(worker.Run().ok());
  EXPECT_EQ(fake_.joins, 4);
  EXPECT_EQ(worker.stats().sessions, 1);
}

TEST_F(WorkerTest, StopEndsTheBackoffLoopPromptly) {
  fake_.unavailable_joins = 1 << 30;
  engine::ThreadPool pool(1);
  WorkerOptions options = Options();
  options.min_backoff = options.max_backoff = std::chrono::milliseconds(60000);
  Worker worker(options, pool);
  Status status = InternalError("not run");
  std::thread runner([&] { status = worker.Run(); });
  while (fake_.joins == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto start = std::chrono::steady_clock::now();
  worker.Stop();
  runner.join();
  EXPECT_TRUE(status.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));  // well under the 60 s backoff
}

TEST(WorkerOptionsTest, Validation) {
  WorkerOptions options;
  options.token = "";
  EXPECT_EQ(options.Validate().code(), StatusCode::kInvalidArgument);
  options.token = "t";
  EXPECT_TRUE(options.Validate().ok());
  options.coordinator = "";
  EXPECT_EQ(options.Validate().code(), StatusCode::kInvalidArgument);
  options.coordinator = "h:1";
  options.max_backoff = std::chrono::milliseconds(1);
  EXPECT_EQ(options.Validate().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lanlm::worker
