// The worker's join / lease / gradient loop; see worker.h.
#include "worker/worker.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cinttypes>

#include "engine/io/checkpoint.h"
#include "engine/train/gradient_tree.h"
#include "engine/ops/matmul.h"
#include "engine/model/parameters.h"
#include "engine/train/local_steps.h"
#include "engine/train/trainer.h"
#include "protos/cluster_auth.h"
#include "protos/convert.h"

namespace lanlm::worker {
namespace {

using Clock = std::chrono::steady_clock;
using Stream = grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>;

std::string DefaultName() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return std::string(host) + ":" + std::to_string(getpid());
}

bool Fatal(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAUTHENTICATED || code == grpc::StatusCode::FAILED_PRECONDITION ||
         code == grpc::StatusCode::INVALID_ARGUMENT || code == grpc::StatusCode::PERMISSION_DENIED;
}

}  // namespace

Status WorkerOptions::Validate() const {
  if (coordinator.empty()) return InvalidArgumentError("--coordinator ADDR is required");
  if (token.empty()) return InvalidArgumentError("a cluster token is required (--cluster-token-file FILE)");
  if (min_backoff.count() <= 0 || max_backoff < min_backoff) {
    return InvalidArgumentError("backoff must satisfy 0 < min <= max");
  }
  return OkStatus();
}

Worker::Worker(WorkerOptions options, engine::ThreadPool& pool) : options_(std::move(options)), pool_(pool) {
  if (options_.name.empty()) options_.name = DefaultName();
}

Worker::~Worker() = default;

void Worker::Stop() {
  stopping_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  if (active_context_ != nullptr) active_context_->TryCancel();
  cv_.notify_all();
}

WorkerStats Worker::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

Status Worker::Run() {
  LANLM_RETURN_IF_ERROR(options_.Validate());
  auto backoff = options_.min_backoff;
  while (!stopping_) {
    Status status;
    bool progress = false;
    const SessionEnd end = Session(&status, &progress);
    if (end == SessionEnd::kFinished || end == SessionEnd::kStopped) return OkStatus();
    if (end == SessionEnd::kFatal) {
      spdlog::error("worker {}: giving up: {}", options_.name, status.ToString());
      return status;
    }
    if (progress) backoff = options_.min_backoff;
    spdlog::warn("worker {}: coordinator {} unavailable ({}); reconnecting in {} ms", options_.name,
                 options_.coordinator, status.ToString(), backoff.count());
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, backoff, [this] { return stopping_.load(); });
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  return OkStatus();
}

Status Worker::Configure(const v1::JoinReply& reply) {
  LANLM_ASSIGN_OR_RETURN(engine::ModelConfig config, protos::FromProto(reply.model_config()));
  if (config.Hash() != reply.model_config_hash()) {
    return FailedPreconditionError("model config " + config.ToString() +
                                   " hashes differently here than on the coordinator");
  }
  if (reply.micro_batch() < 1 || reply.micro_batch() > 4096) {
    return InvalidArgumentError("micro_batch = " + std::to_string(reply.micro_batch()) + " is outside [1, 4096]");
  }
  if (reply.parameter_count() != engine::ParameterCount(config)) {
    return FailedPreconditionError("parameter_count = " + std::to_string(reply.parameter_count()) +
                                   " but the model has " + std::to_string(engine::ParameterCount(config)));
  }
  if (reply.max_chunk_bytes() <= 0 || reply.max_chunk_bytes() > protos::kMaxChunkBytes ||
      reply.max_chunk_bytes() % 4 != 0) {
    return InvalidArgumentError("max_chunk_bytes = " + std::to_string(reply.max_chunk_bytes()) + " is invalid");
  }
  if (engine::WireBytes(reply.wire_format()) == 0) {
    return InvalidArgumentError("wire_format = " + std::to_string(reply.wire_format()) +
                                " is unknown here (this worker speaks fp32 and bf16)");
  }
  inner_.reset();
  if (reply.has_inner()) {
    LANLM_ASSIGN_OR_RETURN(engine::AdamWOptions inner, protos::FromProto(reply.inner()));
    inner_ = std::move(inner);
  }
  // Parameters cached under another wire format were rounded differently: never mix them.
  const auto wire = static_cast<engine::WireFormat>(reply.wire_format());
  if (wire != wire_) cached_version_ = -1;
  wire_ = wire;
  if (!engine::IsRunId(reply.run_id())) {
    return InvalidArgumentError("run_id \"" + reply.run_id().substr(0, 40) + "\" is not 32 lowercase hex digits");
  }
  if (reply.run_id() != cached_run_ && cached_version_ >= 0) {
    spdlog::info("worker {}: the coordinator runs {}; dropping cached version {} of run {}", options_.name,
                 reply.run_id(), cached_version_, cached_run_);
    cached_version_ = -1;
    cached_run_.clear();
  }
  engine::Precision precision = engine::Precision::kFp32;
  if (!reply.precision().empty() && !engine::ParsePrecision(reply.precision(), &precision)) {
    return InvalidArgumentError("precision \"" + reply.precision().substr(0, 16) +
                                "\" is unknown here (this worker computes fp32 and bf16)");
  }
  if (precision == engine::Precision::kBf16 && !engine::Bf16Supported()) {
    return FailedPreconditionError("precision bf16 (coordinator) needs AVX512_BF16, AVX-512F or AVX2 + FMA; "
                                   "this worker's CPU has none of them");
  }
  if (configured_ && config == config_ && reply.micro_batch() == micro_batch_ && precision == model_->precision()) {
    return OkStatus();
  }
  config_ = config;
  micro_batch_ = reply.micro_batch();
  parameter_count_ = reply.parameter_count();
  model_ = std::make_unique<engine::Model>(config_, micro_batch_, precision);
  if (precision == engine::Precision::kBf16) {
    spdlog::info("worker {}: precision bf16, matmul kernel {}", options_.name, engine::Bf16KernelPath());
  }
  params_.assign(static_cast<size_t>(parameter_count_), 0.0f);
  grad_.assign(static_cast<size_t>(parameter_count_), 0.0f);
  cached_version_ = -1;
  cached_run_.clear();
  configured_ = true;
  return OkStatus();
}

Worker::SessionEnd Worker::Session(Status* status, bool* made_progress) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(protos::kMaxMessageBytes);
  args.SetMaxSendMessageSize(protos::kMaxMessageBytes);
  auto channel = grpc::CreateCustomChannel(options_.coordinator, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Cluster::NewStub(channel);

  // Join.
  v1::JoinReply reply;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options_.join_timeout);
    protos::AttachClusterToken(context, options_.token);
    v1::JoinRequest request;
    request.set_protocol_version(v1::PROTOCOL_VERSION_CURRENT);
    request.set_model_config_hash(options_.expect_config_hash);
    request.set_tokenizer_hash(options_.expect_tokenizer_hash);
    request.set_worker_name(options_.name.substr(0, 128));
    request.set_threads(pool_.size());
    request.add_precisions("fp32");
    if (engine::Bf16Supported()) request.add_precisions("bf16");
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return SessionEnd::kStopped;
      active_context_ = &context;
    }
    const grpc::Status joined = stub->Join(&context, request, &reply);
    {
      std::lock_guard<std::mutex> lock(mu_);
      active_context_ = nullptr;
    }
    if (stopping_) return SessionEnd::kStopped;
    if (!joined.ok()) {
      *status = protos::FromGrpcStatus(joined);
      return Fatal(joined.error_code()) ? SessionEnd::kFatal : SessionEnd::kRetry;
    }
  }
  if (Status configured = Configure(reply); !configured.ok()) {
    *status = configured;
    return SessionEnd::kFatal;
  }
  worker_id_ = reply.worker_id();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.sessions;
  }
  spdlog::info("worker {}: joined {} as {} (model {}, B={}, {} params, wire {}, cached version {})", options_.name,
               options_.coordinator, worker_id_, config_.ToString(), micro_batch_, parameter_count_,
               engine::WireName(static_cast<int>(wire_)), cached_version_);

  // Work stream.
  grpc::ClientContext context;
  protos::AttachClusterToken(context, options_.token);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return SessionEnd::kStopped;
    active_context_ = &context;
  }
  std::unique_ptr<Stream> stream = stub->Work(&context);
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(worker_id_);
  hello.mutable_hello()->set_cached_version(cached_version_);
  hello.mutable_hello()->set_cached_run_id(cached_run_);
  v1::WorkerMessage ask;
  ask.mutable_lease_request()->set_cached_version(cached_version_);
  ask.mutable_lease_request()->set_cached_run_id(cached_run_);
  // `writable` goes false when a write fails: the coordinator has ended the call (for example
  // right after the last step's commit). What it sent before that (the last CommitResult,
  // the Shutdown) is still in the stream, so keep reading until the end rather than
  // dropping it. `local_error` is a problem on this side: stop reading and cancel.
  bool writable = stream->Write(hello) && stream->Write(ask);
  bool local_error = false;
  bool shut_down = false;

  SessionEnd end = SessionEnd::kRetry;
  std::unique_ptr<protos::ChunkAssembler> incoming;  // parameters being received
  int64_t incoming_version = -1;
  v1::CoordinatorMessage message;
  auto fail_locally = [&](Status error) {
    *status = std::move(error);
    local_error = true;
  };
  while (!local_error && !shut_down && stream->Read(&message)) {
    switch (message.kind_case()) {
      case v1::CoordinatorMessage::kParamChunk: {
        const v1::ParamChunk& chunk = message.param_chunk();
        if (chunk.run_id() != reply.run_id()) {
          fail_locally(InvalidArgumentError("parameters of run " + chunk.run_id().substr(0, 40) +
                                            " on a stream of run " + reply.run_id()));
          break;
        }
        if (!incoming || incoming_version != chunk.version() || chunk.chunk().offset() == 0) {
          incoming = std::make_unique<protos::ChunkAssembler>(parameter_count_, protos::kMaxChunkBytes, wire_);
          incoming_version = chunk.version();
        }
        if (Status added = incoming->Add(chunk.chunk()); !added.ok()) {
          fail_locally(std::move(added));
          break;
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          stats_.param_bytes += static_cast<int64_t>(chunk.chunk().data().size());
        }
        if (incoming->complete()) {
          params_ = incoming->Take();
          cached_version_ = incoming_version;
          cached_run_ = chunk.run_id();
          incoming.reset();
        }
        break;
      }
      case v1::CoordinatorMessage::kLease: {
        if (!writable) break;  // the gradient could not be sent back
        Status handled = HandleLease(message.lease(), *stream, &writable);
        if (handled.ok()) {
          *made_progress = true;
        } else if (writable) {
          fail_locally(std::move(handled));
        } else if (status->ok()) {
          *status = std::move(handled);  // reported if no Shutdown explains the broken stream
        }
        break;
      }
      case v1::CoordinatorMessage::kCommitResult: {
        const v1::CommitResult& result = message.commit_result();
        std::lock_guard<std::mutex> lock(mu_);
        if (result.code() == 0) {
          ++stats_.accepted;
        } else {
          ++stats_.rejected;
          spdlog::warn("worker {}: commit of lease {} rejected (code {}): {}", options_.name, result.lease_id(),
                       result.code(), result.message());
        }
        break;
      }
      case v1::CoordinatorMessage::kShutdown:
        spdlog::info("worker {}: coordinator shuts down: {}", options_.name, message.shutdown().reason());
        end = message.shutdown().finished() && options_.exit_when_finished ? SessionEnd::kFinished : SessionEnd::kRetry;
        *status = UnavailableError("coordinator shut down: " + message.shutdown().reason());
        shut_down = true;
        break;
      default:
        fail_locally(InvalidArgumentError("unknown message kind from the coordinator"));
        break;
    }
  }
  // On a local error, or a shutdown we will not wait out, the stream may still be open:
  // cancel it so Finish returns.
  if (local_error || (shut_down && end != SessionEnd::kFinished)) context.TryCancel();
  if (writable) stream->WritesDone();
  const grpc::Status finished = stream->Finish();
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_context_ = nullptr;
  }
  if (stopping_) return SessionEnd::kStopped;
  if (end == SessionEnd::kFinished) return end;
  if (status->ok()) *status = finished.ok() ? UnavailableError("stream ended") : protos::FromGrpcStatus(finished);
  return SessionEnd::kRetry;
}

Status Worker::ComputeLease(const v1::Lease& lease, const std::vector<int32_t>& tokens, int shards, float* losses) {
  if (lease.local_steps() > 0) {
    if (!inner_) {
      return InvalidArgumentError("lease " + std::to_string(lease.lease_id()) + " has local_steps = " +
                                  std::to_string(lease.local_steps()) + " but the run sent no inner optimizer");
    }
    // A DiLoCo round: grad_ receives the parameter difference in place of a gradient.
    return engine::RunLocalSteps(*inner_, lease.step(), lease.local_steps(), shards, *model_, micro_batch_,
                                 params_.data(), tokens.data(), grad_.data(), losses, pool_,
                                 [this] { return stopping_.load(); });
  }
  if (shards == 1) {
    losses[0] = engine::ComputeShardGradient(*model_, params_.data(), tokens.data(), micro_batch_, grad_.data(), pool_);
    return OkStatus();
  }
  // One gradient per shard, then their tree sum: the node the coordinator's GradientTree
  // would have built from them, bit for bit.
  const int64_t per_shard = int64_t{micro_batch_} * (config_.context + 1);
  std::vector<std::vector<float>> block(static_cast<size_t>(shards));
  for (int i = 0; i < shards && !stopping_; ++i) {
    block[i].resize(static_cast<size_t>(parameter_count_));
    losses[i] = engine::ComputeShardGradient(*model_, params_.data(), tokens.data() + i * per_shard, micro_batch_,
                                             block[i].data(), pool_);
  }
  if (stopping_) return CancelledError("stopping");
  grad_ = engine::GradientTree::SumBlock(std::move(block), pool_);
  return OkStatus();
}

Status Worker::HandleLease(const v1::Lease& lease, Stream& stream, bool* writable) {
  if (lease.step() != cached_version_ || lease.run_id() != cached_run_) {
    Status mismatch = FailedPreconditionError(
        "lease " + std::to_string(lease.lease_id()) + " is for step " + std::to_string(lease.step()) + " of run " +
        lease.run_id().substr(0, 40) + " but the parameters here are version " + std::to_string(cached_version_) +
        " of run " + (cached_run_.empty() ? "none" : cached_run_));
    cached_version_ = -1;  // ask for the parameters again after reconnecting
    return mismatch;
  }
  LANLM_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, protos::TokensFromProto(lease, config_, micro_batch_));
  LANLM_ASSIGN_OR_RETURN(const int shards, protos::LeaseShardCount(lease));
  const auto start = Clock::now();
  std::vector<float> losses(static_cast<size_t>(shards));
  LANLM_RETURN_IF_ERROR(ComputeLease(lease, tokens, shards, losses.data()));
  const double compute_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (stopping_) return CancelledError("stopping");

  std::vector<v1::FloatChunk> chunks = protos::MakeChunks(grad_.data(), parameter_count_, protos::kMaxChunkBytes, wire_);
  const uint32_t commit_crc = protos::ChunksCrc32c(chunks);
  v1::WorkerMessage out;
  for (v1::FloatChunk& chunk : chunks) {
    v1::GradientChunk* g = out.mutable_gradient_chunk();
    g->set_lease_id(lease.lease_id());
    *g->mutable_chunk() = std::move(chunk);
    if (!stream.Write(out)) {
      *writable = false;
      return UnavailableError("stream broke while sending a gradient");
    }
  }
  out.Clear();
  v1::Commit* commit = out.mutable_commit();
  commit->set_lease_id(lease.lease_id());
  commit->set_floats(parameter_count_);
  commit->set_crc32c(commit_crc);
  commit->set_loss(losses[0]);
  commit->set_compute_ms(compute_ms);
  if (shards > 1) {
    for (float l : losses) commit->add_shard_losses(l);
  }
  if (!stream.Write(out)) {
    *writable = false;
    return UnavailableError("stream broke while committing");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.leases;
    stats_.gradient_bytes += parameter_count_ * engine::WireBytes(static_cast<int>(wire_));
  }
  spdlog::debug("worker {}: step {} shards {}+{} loss={:.4f} compute_ms={:.1f}", options_.name, lease.step(),
                lease.shard(), shards, losses[0], compute_ms);
  v1::WorkerMessage ask;
  ask.mutable_lease_request()->set_cached_version(cached_version_);
  ask.mutable_lease_request()->set_cached_run_id(cached_run_);
  if (!stream.Write(ask)) {
    *writable = false;
    return UnavailableError("stream broke while asking for a lease");
  }
  return OkStatus();
}

}  // namespace lanlm::worker
