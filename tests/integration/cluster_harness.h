// Shared helpers of the cluster tests: a small deterministic corpus, tiny-model options, the
// single-process reference (engine LocalTrainer on the same setup), an in-process cluster on
// localhost:0 (coordinator + N Worker objects on threads), and a raw protocol client for
// feeding the coordinator bad input.
#pragma once

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "coordinator/coordinator_server.h"
#include "coordinator/run_config.h"
#include "engine/base/hash.h"
#include "engine/base/random.h"
#include "engine/base/thread_pool.h"
#include "engine/train/trainer.h"
#include "protos/cluster.grpc.pb.h"
#include "protos/cluster_auth.h"
#include "protos/convert.h"
#include "tests/support/temp_dir.h"
#include "worker/worker.h"

namespace lanlm::testing {

inline constexpr char kTestToken[] = "test-cluster-token-0123";

using test_support::TestTempDir;
inline std::string TempDir(const std::string& name) { return TestTempDir(name); }

// dir/token holding kTestToken, for --cluster-token-file.
inline std::string WriteTokenFile(const std::string& dir) {
  const std::string path = dir + "/token";
  std::ofstream(path) << kTestToken << "\n";
  return path;
}

// ~12 KB of pseudo-English from a fixed word list, the same bytes on every run.
inline std::string WriteCorpus(const std::string& dir) {
  static const char* kWords[] = {"the", "lord", "said", "unto", "moses", "and", "he", "went", "into", "land",
                                 "of", "egypt", "with", "all", "his", "house", "in", "that", "day", "light",
                                 "waters", "were", "upon", "face", "deep", "god", "saw", "it", "was", "good"};
  std::string text;
  for (uint64_t i = 0; text.size() < 12000; ++i) {
    text += kWords[engine::CounterRng::Below(42, i, 30)];
    text += (i % 13 == 12) ? ".\n" : " ";
  }
  const std::string path = dir + "/corpus.txt";
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// Tiny model: C=32 L=2 NH=2 F=64 T=16, V = a 96-token tokenizer, B=2, S=4 shards.
inline coordinator::CoordinatorOptions TinyOptions(const std::string& corpus, int64_t steps) {
  coordinator::CoordinatorOptions options;
  options.corpus = corpus;
  options.config = "S";
  options.vocab_size = 96;
  options.dim = 32;
  options.layers = 2;
  options.heads = 2;
  options.ffn_hidden = 64;
  options.context = 16;
  options.micro_batch = 2;
  options.shards = 4;
  options.steps = steps;
  options.seed = 7;
  options.lr = 3e-3f;
  options.warmup = 2;
  options.listen = "127.0.0.1:0";
  options.cluster_token = kTestToken;
  options.threads = 1;
  options.lease_timeout_ms = 20000;
  return options;
}

inline std::string Hex(uint64_t v) { return engine::Hex16(v); }

// The single-process fingerprint after options.steps steps (engine LocalTrainer).
inline uint64_t ReferenceFingerprint(const coordinator::CoordinatorOptions& options) {
  auto setup = coordinator::PrepareRun(options, GivenFlags{"steps"});
  EXPECT_TRUE(setup.ok()) << setup.status().ToString();
  if (!setup.ok()) return 0;
  engine::ThreadPool pool(1);
  engine::LocalTrainer trainer(setup->train, setup->train_tokens, setup->state, pool);
  while (setup->state.step < setup->train.steps) {
    auto loss = trainer.Step();
    EXPECT_TRUE(loss.ok()) << loss.status().ToString();
    if (!loss.ok()) return 0;
  }
  return setup->state.Fingerprint();
}

// A test with a fresh folder dir_ holding WriteCorpus's corpus_.
class CorpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // spdlog builds its registry on first use, inside the uninstrumented libspdlog, so TSan
    // cannot see the guard when a coordinator's and a worker's threads log first together:
    // build it here, on the test's thread, before either starts.
    spdlog::default_logger_raw();
    dir_ = TempDir("run");
    corpus_ = WriteCorpus(dir_);
  }
  std::string dir_, corpus_;
};

// Worker objects, each on its own thread with its own pool.
class WorkerGroup {
 public:
  WorkerGroup(int port, int count, int threads_each) {
    for (int i = 0; i < count; ++i) Add(port, threads_each);
  }
  ~WorkerGroup() { StopAll(); }

  // exit_when_finished = false: the worker outlives the run (lanlm-worker --keep-running).
  // customize: changes the options before the worker starts (relay flags, ...).
  void Add(int port, int threads, bool exit_when_finished = true,
           const std::function<void(worker::WorkerOptions&)>& customize = {}) {
    auto entry = std::make_unique<Entry>();
    entry->pool = std::make_unique<engine::ThreadPool>(threads);
    worker::WorkerOptions options;
    options.coordinator = "127.0.0.1:" + std::to_string(port);
    options.token = kTestToken;
    options.name = "test-worker-" + std::to_string(entries_.size());
    options.min_backoff = std::chrono::milliseconds(20);
    options.max_backoff = std::chrono::milliseconds(200);
    options.exit_when_finished = exit_when_finished;
    if (customize) customize(options);
    entry->worker = std::make_unique<worker::Worker>(options, *entry->pool);
    Entry* raw = entry.get();
    entry->thread = std::thread([raw] {
      raw->status = raw->worker->Run();
      raw->done.store(true);
    });
    entries_.push_back(std::move(entry));
  }
  void StopAll() {
    for (auto& e : entries_) e->worker->Stop();
    JoinAll();
  }
  // Waits for every worker to end by itself (told "finished" by the coordinator). A worker whose
  // thread only got to connect after the run ended retries a coordinator that is gone, as a
  // real worker should; after a grace period such a worker is stopped, so no test can hang.
  void JoinAll(std::chrono::seconds grace = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + grace;
    for (auto& e : entries_) {
      while (!e->done.load() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    for (auto& e : entries_) {
      if (!e->done.load()) e->worker->Stop();
    }
    for (auto& e : entries_) {
      if (e->thread.joinable()) e->thread.join();
    }
  }
  worker::Worker& worker(int i) { return *entries_[static_cast<size_t>(i)]->worker; }
  const Status& status(int i) const { return entries_[static_cast<size_t>(i)]->status; }

 private:
  struct Entry {
    std::unique_ptr<engine::ThreadPool> pool;
    std::unique_ptr<worker::Worker> worker;
    std::thread thread;
    Status status;
    std::atomic<bool> done{false};
  };
  std::vector<std::unique_ptr<Entry>> entries_;
};

// A fresh run of options trained by `workers` in-process Worker objects (thread counts 1, 2,
// 1, ...); first (if given) gets the first worker's stats.
inline coordinator::RunResult TrainWithWorkers(const coordinator::CoordinatorOptions& options, int workers,
                                               worker::WorkerStats* first = nullptr) {
  auto server = coordinator::TrainingServer::Start(options, GivenFlags{"steps"}, false);
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  if (!server.ok()) return {};
  WorkerGroup group((*server)->port(), 0, 1);
  for (int i = 0; i < workers; ++i) group.Add((*server)->port(), 1 + i % 2);
  auto result = (*server)->Wait();
  group.JoinAll();
  if (first != nullptr) *first = group.worker(0).stats();
  return result;
}

// Speaks the Cluster protocol by hand, to send what a correct worker never would.
class RawClient {
 public:
  using Stream = grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>;

  explicit RawClient(int port) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(protos::kMaxMessageBytes);
    args.SetMaxSendMessageSize(protos::kMaxMessageBytes);
    stub_ = v1::Cluster::NewStub(grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                                           grpc::InsecureChannelCredentials(), args));
  }
  ~RawClient() { Close(); }

  grpc::Status Join(v1::JoinRequest request, v1::JoinReply* reply, const std::string& token = kTestToken) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) protos::AttachClusterToken(context, token);
    if (request.protocol_version() == 0) request.set_protocol_version(v1::PROTOCOL_VERSION_CURRENT);
    return stub_->Join(&context, request, reply);
  }

  // Join (listing both precisions, as a worker on an AVX2 CPU does) + open the stream + Hello.
  // Returns false on failure.
  bool Connect(const std::string& relay_address = "") {
    v1::JoinRequest request;
    request.set_relay_address(relay_address);
    request.add_precisions("fp32");
    request.add_precisions("bf16");
    if (!Join(request, &reply_).ok()) return false;
    auto config = protos::FromProto(reply_.model_config());
    if (!config.ok()) return false;
    config_ = *config;
    context_ = std::make_unique<grpc::ClientContext>();
    protos::AttachClusterToken(*context_, kTestToken);
    stream_ = stub_->Work(context_.get());
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(reply_.worker_id());
    hello.mutable_hello()->set_cached_version(-1);
    return stream_->Write(hello);
  }

  // Asks for a lease and reads until it and its parameters (protocol 6: sent after the
  // lease when this client's version is older) have arrived, keeping the parameters.
  bool TakeLease(v1::Lease* lease) {
    if (!AskLease()) return false;
    bool leased = false;
    v1::CoordinatorMessage message;
    while (stream_->Read(&message)) {
      if (message.has_param_chunk()) {
        if (message.param_chunk().chunk().offset() == 0) {
          incoming_ = std::make_unique<protos::ChunkAssembler>(reply_.parameter_count(), protos::kMaxChunkBytes,
                                                               static_cast<engine::WireFormat>(reply_.wire_format()));
        }
        if (!incoming_->Add(message.param_chunk().chunk()).ok()) return false;
        if (incoming_->complete()) {
          params_ = incoming_->Take();
          version_ = message.param_chunk().version();
          if (leased && version_ == lease->step()) return true;
        }
      } else if (message.has_lease()) {
        *lease = message.lease();
        leased = true;
        if (version_ == lease->step()) return true;
      } else if (message.has_commit_result()) {
        results_.push_back(message.commit_result());
      } else {
        return false;
      }
    }
    return false;
  }

  // Sends a LeaseRequest naming the parameters held.
  bool AskLease() {
    v1::WorkerMessage ask;
    ask.mutable_lease_request()->set_cached_version(version_);
    ask.mutable_lease_request()->set_cached_run_id(reply_.run_id());
    return stream_->Write(ask);
  }

  // Reads the next message (false when the stream ended).
  bool Read(v1::CoordinatorMessage* message) { return stream_->Read(message); }

  // The correct gradient of a lease, computed with the engine.
  std::vector<float> Gradient(const v1::Lease& lease, float* loss) {
    engine::ThreadPool pool(1);
    engine::Model model(config_, reply_.micro_batch());
    std::vector<float> grad(params_.size());
    auto tokens = protos::TokensFromProto(lease, config_, reply_.micro_batch());
    EXPECT_TRUE(tokens.ok());
    *loss = engine::ComputeShardGradient(model, params_.data(), tokens->data(), reply_.micro_batch(), grad.data(),
                                         pool);
    return grad;
  }

  // Sends gradient chunks of lease_id, no commit.
  void SendChunks(int64_t lease_id, std::vector<v1::FloatChunk> chunks) {
    v1::WorkerMessage out;
    for (auto& chunk : chunks) {
      out.mutable_gradient_chunk()->set_lease_id(lease_id);
      *out.mutable_gradient_chunk()->mutable_chunk() = std::move(chunk);
      stream_->Write(out);
    }
  }

  // Sends chunks (optionally altered) and a commit; returns the CommitResult for lease_id.
  v1::CommitResult Send(int64_t lease_id, std::vector<v1::FloatChunk> chunks, int64_t floats, float loss,
                        std::optional<uint32_t> crc = std::nullopt, const std::vector<float>& shard_losses = {}) {
    v1::WorkerMessage out;
    const uint32_t commit_crc = crc ? *crc : protos::ChunksCrc32c(chunks);
    for (auto& chunk : chunks) {
      out.mutable_gradient_chunk()->set_lease_id(lease_id);
      *out.mutable_gradient_chunk()->mutable_chunk() = std::move(chunk);
      stream_->Write(out);
    }
    out.Clear();
    out.mutable_commit()->set_lease_id(lease_id);
    for (float l : shard_losses) out.mutable_commit()->add_shard_losses(l);
    out.mutable_commit()->set_floats(floats);
    out.mutable_commit()->set_crc32c(commit_crc);
    out.mutable_commit()->set_loss(loss);
    stream_->Write(out);
    return AwaitResult(lease_id);
  }

  v1::CommitResult AwaitResult(int64_t lease_id) {
    for (auto it = results_.begin(); it != results_.end(); ++it) {
      if (it->lease_id() == lease_id) {
        v1::CommitResult r = *it;
        results_.erase(it);
        return r;
      }
    }
    v1::CoordinatorMessage message;
    while (stream_->Read(&message)) {
      if (message.has_commit_result()) {
        if (message.commit_result().lease_id() == lease_id) return message.commit_result();
        results_.push_back(message.commit_result());
      }
    }
    v1::CommitResult broken;
    broken.set_lease_id(lease_id);
    broken.set_code(-1);
    broken.set_message("stream ended");
    return broken;
  }

  void Cancel() {
    if (context_) context_->TryCancel();
  }
  void Close() {
    if (!stream_) return;
    stream_->WritesDone();
    context_->TryCancel();
    stream_->Finish();
    stream_.reset();
  }
  grpc::Status OpenStreamWithToken(const std::string& token) {
    grpc::ClientContext context;
    if (!token.empty()) protos::AttachClusterToken(context, token);
    auto stream = stub_->Work(&context);
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id("w1");
    stream->Write(hello);
    stream->WritesDone();
    v1::CoordinatorMessage message;
    while (stream->Read(&message)) {
    }
    return stream->Finish();
  }

  const v1::JoinReply& reply() const { return reply_; }
  int64_t parameter_count() const { return reply_.parameter_count(); }
  const std::vector<float>& params() const { return params_; }
  bool Write(const v1::WorkerMessage& message) { return stream_->Write(message); }
  // Reads until the stream ends; its status.
  grpc::Status Drain() {
    v1::CoordinatorMessage message;
    while (stream_->Read(&message)) {
    }
    grpc::Status status = stream_->Finish();
    stream_.reset();
    return status;
  }

 private:
  std::unique_ptr<v1::Cluster::Stub> stub_;
  v1::JoinReply reply_;
  engine::ModelConfig config_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<protos::ChunkAssembler> incoming_;
  std::vector<float> params_;
  int64_t version_ = -1;
  std::vector<v1::CommitResult> results_;
};

}  // namespace lanlm::testing
