// The worker's sessions: join, configure, and the Work stream's read loop; see worker.h
// (worker_lease.cc computes and sends each lease's gradient).
#include "worker/worker.h"
#include "worker/work_state.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cinttypes>

#include "engine/io/checkpoint.h"
#include "engine/ops/matmul.h"
#include "engine/model/parameters.h"
#include "protos/cluster_auth.h"
#include "protos/convert.h"

namespace lanlm::worker {
namespace {

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
  LANLM_RETURN_IF_ERROR(protos::MakeChannel(coordinator, tls).status());  // reads and checks the PEM files
  if (min_backoff.count() <= 0 || max_backoff < min_backoff) {
    return InvalidArgumentError("backoff must satisfy 0 < min <= max");
  }
  return ValidateRelay();
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
  WorkerStats stats = stats_;
  if (relay_) stats.relay_served_bytes = relay_->service().bytes_served();
  return stats;
}

Status Worker::Run() {
  LANLM_RETURN_IF_ERROR(options_.Validate());
  LANLM_RETURN_IF_ERROR(StartRelay());
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

Worker::SessionEnd Worker::Session(Status* status, bool* made_progress) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(protos::kMaxMessageBytes);
  args.SetMaxSendMessageSize(protos::kMaxMessageBytes);
  StatusOr<std::shared_ptr<grpc::Channel>> channel = protos::MakeChannel(options_.coordinator, options_.tls, args);
  if (!channel.ok()) {
    *status = channel.status();
    return SessionEnd::kFatal;
  }
  auto stub = v1::Cluster::NewStub(*channel);

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
    request.set_relay_address(relay_advertised_);
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
      Status tls = protos::TlsRefusal(joined, options_.coordinator, options_.tls, &closed_before_http2_);
      if (!tls.ok()) {
        *status = std::move(tls);  // the same credentials cannot succeed later
        return SessionEnd::kFatal;
      }
      return Fatal(joined.error_code()) ? SessionEnd::kFatal : SessionEnd::kRetry;
    }
  }
  if (Status configured = Configure(reply); !configured.ok()) {
    *status = configured;
    return SessionEnd::kFatal;
  }
  worker_id_ = reply.worker_id();
  closed_before_http2_ = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.sessions;
  }
  spdlog::info("worker {}: joined {} as {} (model {}, B={}, {} params, wire {}, cached version {})", options_.name,
               options_.coordinator, worker_id_, config_.ToString(), micro_batch_, parameter_count_,
               engine::WireName(static_cast<int>(wire_)), cached_version_);

  return WorkStream(*stub, reply.run_id(), status, made_progress);
}

Worker::SessionEnd Worker::WorkStream(v1::Cluster::Stub& stub, const std::string& run_id, Status* status,
                                      bool* made_progress) {
  grpc::ClientContext context;
  protos::AttachClusterToken(context, options_.token);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return SessionEnd::kStopped;
    active_context_ = &context;
  }
  std::unique_ptr<Stream> stream = stub.Work(&context);
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(worker_id_);
  hello.mutable_hello()->set_cached_version(cached_version_);
  hello.mutable_hello()->set_cached_run_id(cached_run_);
  v1::WorkerMessage ask;
  ask.mutable_lease_request()->set_cached_version(cached_version_);
  ask.mutable_lease_request()->set_cached_run_id(cached_run_);
  WorkState state;
  state.stream = stream.get();
  state.context = &context;
  state.run_id = run_id;
  state.status = status;
  state.made_progress = made_progress;
  state.writable = stream->Write(hello) && stream->Write(ask);
  v1::CoordinatorMessage message;
  while (!state.local_error && !state.shut_down && stream->Read(&message)) HandleMessage(message, state);
  // On a local error, or a shutdown we will not wait out, the stream may still be open:
  // cancel it so Finish returns (and a lease still computing stops writing).
  if (state.local_error || (state.shut_down && state.end != SessionEnd::kFinished)) context.TryCancel();
  arrival_.Abandon();  // parameters still missing never come: the lease is dropped, not committed
  StopFetch(state);
  {
    std::lock_guard<std::mutex> lock(param_mu_);
    if (state.incoming && feed_) feed_->Drop();  // peers fetching it ask the coordinator instead
  }
  JoinCompute(state);
  if (state.local_error) context.TryCancel();
  if (state.writable) stream->WritesDone();
  const grpc::Status finished = stream->Finish();
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_context_ = nullptr;
  }
  if (stopping_) return SessionEnd::kStopped;
  if (state.end == SessionEnd::kFinished) return state.end;
  if (status->ok()) *status = finished.ok() ? UnavailableError("stream ended") : protos::FromGrpcStatus(finished);
  return SessionEnd::kRetry;
}

void Worker::HandleMessage(const v1::CoordinatorMessage& message, WorkState& s) {
  switch (message.kind_case()) {
    case v1::CoordinatorMessage::kParamChunk:
      AcceptParamChunk(message.param_chunk(), s);
      break;
    case v1::CoordinatorMessage::kLease:
      StartLease(message.lease(), s);
      break;
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
      s.end = message.shutdown().finished() && options_.exit_when_finished ? SessionEnd::kFinished : SessionEnd::kRetry;
      *s.status = UnavailableError("coordinator shut down: " + message.shutdown().reason());
      s.shut_down = true;
      break;
    default:
      s.FailLocally(InvalidArgumentError("unknown message kind from the coordinator"));
      break;
  }
}

void Worker::JoinCompute(WorkState& s) {
  if (!s.compute.joinable()) return;
  s.compute.join();
  LeaseOutcome outcome = std::move(s.outcome);
  s.outcome = {};
  if (outcome.status.ok()) {
    *s.made_progress = true;
  } else if (!outcome.writable) {
    s.writable = false;
    if (s.status->ok()) *s.status = std::move(outcome.status);  // reported if no Shutdown explains it
  } else if (!s.local_error && outcome.status.code() != StatusCode::kCancelled) {
    s.FailLocally(std::move(outcome.status));
  }
}

void Worker::StartLease(const v1::Lease& lease, WorkState& s) {
  JoinCompute(s);  // the previous lease has committed: its thread is ending
  if (!s.writable || s.local_error) return;  // the gradient could not be sent back
  if (lease.run_id() != s.run_id) {
    s.FailLocally(InvalidArgumentError("lease " + std::to_string(lease.lease_id()) + " of run " +
                                       lease.run_id().substr(0, 40) + " on a stream of run " + s.run_id));
    return;
  }
  LeaseTask task;
  StatusOr<std::vector<int32_t>> tokens = protos::TokensFromProto(lease, config_, micro_batch_);
  StatusOr<int> shards = protos::LeaseShardCount(lease);
  if (!tokens.ok() || !shards.ok()) {
    s.FailLocally(tokens.ok() ? shards.status() : tokens.status());
    return;
  }
  task.lease = lease;
  task.tokens = std::move(*tokens);
  task.shards = *shards;
  task.stream = s.stream;
  task.write_mu = &s.write_mu;
  task.context = s.context;
  StopFetch(s);  // the previous lease's fetch ended when its parameters were complete
  {
    std::lock_guard<std::mutex> lock(param_mu_);
    if (lease.step() == cached_version_ && lease.run_id() == cached_run_) {
      task.params = params_.data();
      arrival_.Reset(parameter_count_);
      s.incoming.reset();
    } else {
      // Protocol 6: the parameters of version lease.step() follow (protocol 7: from the peer
      // lease.param_source when it names one); compute while they arrive.
      s.incoming = std::make_unique<protos::ChunkAssembler>(parameter_count_, protos::kMaxChunkBytes, wire_);
      s.incoming_version = lease.step();
      task.params = s.incoming->block().data();
      arrival_.Reset(0);
      BeginFeed(lease.run_id(), lease.step());
    }
  }
  if (!lease.param_source().empty() && s.incoming) StartFetch(lease, s);
  s.compute = std::thread([this, &s, task = std::move(task)] {
    s.outcome = RunLease(task);
    // A local failure: end the stream so the reader stops waiting for messages.
    if (!s.outcome.status.ok() && s.outcome.writable && s.outcome.status.code() != StatusCode::kCancelled) {
      task.context->TryCancel();
    }
  });
}

void Worker::AcceptParamChunk(const v1::ParamChunk& chunk, WorkState& s) {
  if (Status added = AddParamChunk(chunk, s, /*from_peer=*/false); !added.ok()) s.FailLocally(std::move(added));
}

Status Worker::AddParamChunk(const v1::ParamChunk& chunk, WorkState& s, bool from_peer) {
  if (chunk.run_id() != s.run_id) {
    return InvalidArgumentError("parameters of run " + chunk.run_id().substr(0, 40) + " on a stream of run " + s.run_id);
  }
  std::lock_guard<std::mutex> lock(param_mu_);
  if (!s.incoming || s.incoming_version != chunk.version()) {
    return InvalidArgumentError(
        "parameters of version " + std::to_string(chunk.version()) + " without a lease of that version before them" +
        (s.incoming ? " (the lease being computed needs version " + std::to_string(s.incoming_version) + ")" : ""));
  }
  if (from_peer) LANLM_RETURN_IF_ERROR(s.incoming->Check(chunk.chunk()));
  LANLM_RETURN_IF_ERROR(s.incoming->Add(chunk.chunk()));
  if (relay_ && feed_) feed_->Append(std::make_shared<const v1::ParamChunk>(chunk));
  {
    std::lock_guard<std::mutex> stats_lock(mu_);
    stats_.param_bytes += static_cast<int64_t>(chunk.chunk().data().size());
    if (from_peer) stats_.relayed_param_bytes += static_cast<int64_t>(chunk.chunk().data().size());
  }
  if (s.incoming->complete()) {
    // Moving the vector keeps its buffer, which the compute thread is reading.
    params_ = s.incoming->Take();
    cached_version_ = s.incoming_version;
    cached_run_ = chunk.run_id();
    s.incoming.reset();
    if (feed_) feed_->Complete();
  }
  arrival_.Advance(s.incoming ? s.incoming->received() : parameter_count_);
  return OkStatus();
}

}  // namespace lanlm::worker
