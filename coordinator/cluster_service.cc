// Join and the Work stream reactor; see cluster_service.h.
#include "coordinator/cluster_service.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <algorithm>
#include <deque>

#include "engine/base/hash.h"
#include "engine/ops/bf16.h"
#include "protos/cluster_auth.h"
#include "protos/convert.h"
#include "protos/raw_message.h"
#include "protos/tls.h"

namespace lanlm::coordinator {
namespace {

// Registered raw (protos/raw_message.h): a message that does not parse ends the stream with
// INVALID_ARGUMENT naming its type, where a typed stream would end OK with no word.
using Reactor = grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>;

std::string Hex(uint64_t v) { return "0x" + engine::Hex16(v); }

// "ipv4:10.0.0.5:41234" -> "ipv4:10.0.0.5" (a host keeps its address across connections, not
// its port).
std::string PeerHost(const std::string& peer) {
  const size_t colon = peer.rfind(':');
  return colon == std::string::npos || colon < peer.find(':') + 1 ? peer : peer.substr(0, colon);
}

// The write side of one stream: a queue with one write in flight, and exactly one Finish,
// issued once the queue has drained. Detached when the reactor is done.
// Converts the step loop's messages (engine/train/step_messages.h) into lanlm.v1 messages.
class StreamLink final : public WorkerLink {
 public:
  StreamLink(Reactor* reactor, ClusterService& service) : reactor_(reactor), service_(service) {}

  Status SendParams(std::shared_ptr<const ParamSnapshot> params, int64_t from_offset) override {
    const std::shared_ptr<const ParamWire> wire = service_.ParamMessages(params);
    const auto& offsets = wire->offsets;
    const size_t first = static_cast<size_t>(std::lower_bound(offsets.begin(), offsets.end(), from_offset) -
                                             offsets.begin());
    if (first == offsets.size() || offsets[first] != from_offset) {
      return InvalidArgumentError("ParamRequest offset " + std::to_string(from_offset) +
                                  " is not where a parameter chunk starts (chunks of " +
                                  std::to_string(service_.identity().param_chunk_bytes) + " bytes, " +
                                  std::to_string(params->params.size()) + " floats)");
    }
    for (size_t i = first; i < wire->messages.size(); ++i) SendBytes(wire->messages[i]);
    return OkStatus();
  }

  void SendLease(engine::ShardLease lease) override {
    auto message = std::make_shared<v1::CoordinatorMessage>();
    protos::ToProto(lease, message->mutable_lease());
    message->mutable_lease()->set_run_id(service_.identity().run_id);
    Send(std::move(message));
  }

  void SendCommitResult(int64_t lease_id, const Status& status) override {
    auto message = std::make_shared<v1::CoordinatorMessage>();
    v1::CommitResult* result = message->mutable_commit_result();
    result->set_lease_id(lease_id);
    result->set_code(static_cast<int>(status.code()));
    result->set_message(status.message());
    Send(std::move(message));
  }

  void SendShutdown(const std::string& reason, bool finished) override {
    auto message = std::make_shared<v1::CoordinatorMessage>();
    message->mutable_shutdown()->set_reason(reason);
    message->mutable_shutdown()->set_finished(finished);
    Send(std::move(message));
  }

  void Close(const Status& status) override { Close(protos::ToGrpcStatus(status)); }

  void Send(std::shared_ptr<const v1::CoordinatorMessage> message) {
    grpc::ByteBuffer bytes;
    if (grpc::Status serialized = protos::SerializeRaw(*message, &bytes); !serialized.ok()) {
      Close(serialized);  // cannot happen for a message built here; never a silent drop
      return;
    }
    SendBytes(std::move(bytes));
  }

  // A serialized CoordinatorMessage. A ByteBuffer copy shares its slices (reference counted),
  // so the parameter chunks serialized once per version go to every stream without copying.
  void SendBytes(grpc::ByteBuffer bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (reactor_ == nullptr || closing_ || broken_) return;
    queue_.push_back(std::move(bytes));  // a deque: front() stays put while it is written
    if (!writing_) {
      writing_ = true;
      reactor_->StartWrite(&queue_.front());
    }
  }

  void Close(grpc::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (reactor_ == nullptr || closing_) return;
    closing_ = true;
    status_ = std::move(status);
    if (!writing_) FinishLocked();
  }

  void OnWriteDone(bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    if (reactor_ == nullptr) return;
    queue_.pop_front();
    if (!ok) {
      broken_ = true;
      queue_.clear();
    }
    if (!queue_.empty()) {
      reactor_->StartWrite(&queue_.front());
      return;
    }
    writing_ = false;
    if (closing_) FinishLocked();
  }

  void Detach() {
    std::lock_guard<std::mutex> lock(mu_);
    reactor_ = nullptr;
    queue_.clear();
  }

 private:
  void FinishLocked() {
    if (finished_) return;
    finished_ = true;
    reactor_->Finish(status_);
  }

  std::mutex mu_;
  Reactor* reactor_;  // null once the reactor is done
  ClusterService& service_;
  std::deque<grpc::ByteBuffer> queue_;
  bool writing_ = false;
  bool closing_ = false;
  bool broken_ = false;
  bool finished_ = false;
  grpc::Status status_;
};

// One Work call. Owns itself like every reactor here (see GenerateStream): Start() takes a
// shared_ptr to it in self_, and OnDone, gRPC's last call into it, drops that reference.
class WorkStream final : public Reactor, public std::enable_shared_from_this<WorkStream> {
 public:
  WorkStream(ClusterService& service, grpc::CallbackServerContext* context)
      : service_(service), context_(context), link_(std::make_shared<StreamLink>(this, service)) {}

  // Checks the token and the run, then reads the Hello. gRPC may call OnDone as soon as the
  // stream is finished here, so self_ is set first.
  void Start() {
    self_ = shared_from_this();
    const Status auth = protos::CheckClusterToken(*context_, service_.identity().token);
    if (!auth.ok()) {
      link_->Close(protos::ToGrpcStatus(auth));
      return;
    }
    if (!service_.run().accepting()) {
      link_->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator is shutting down"));
      return;
    }
    StartRead(&in_bytes_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      ReportGone(context_->IsCancelled() ? "stream broken" : "worker closed its stream");
      link_->Close(grpc::Status::OK);
      return;
    }
    in_.Clear();
    if (Status parsed = protos::ParseRaw(in_bytes_, &in_); !parsed.ok()) {
      ReportGone("malformed message");
      link_->Close(protos::ToGrpcStatus(parsed));
      return;
    }
    if (connection_ == 0) {
      if (!OnHello()) return;
    } else {
      PostToLoop();
    }
    in_bytes_.Clear();
    StartRead(&in_bytes_);
  }

  void OnWriteDone(bool ok) override { link_->OnWriteDone(ok); }

  void OnDone() override {
    link_->Detach();
    ReportGone("stream done");
    std::shared_ptr<WorkStream> self = std::move(self_);  // may be the last reference
  }

 private:
  bool OnHello() {
    if (in_.kind_case() != v1::WorkerMessage::kHello) {
      link_->Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first Work message must be a Hello"));
      return false;
    }
    const v1::Hello& hello = in_.hello();
    std::string relay_address;
    StatusOr<std::string> name = service_.ClaimWorkerId(hello.worker_id(), context_->peer(), &relay_address);
    if (!name.ok()) {
      link_->Close(protos::ToGrpcStatus(name.status()));
      return false;
    }
    connection_ = service_.NextConnectionId();
    TrainingRun* run = &service_.run();
    std::shared_ptr<WorkerLink> link = link_;
    const int64_t version = service_.CachedVersion(hello.cached_run_id(), hello.cached_version());
    boost::asio::post(service_.io(), [run, connection = connection_, link, id = hello.worker_id(), name = *name,
                                      version, relay_address] {
      run->OnConnected(connection, link, id, name, version, relay_address);
    });
    return true;
  }

  // Hands a message after the Hello to the step loop, converted to its plain form.
  void PostToLoop() {
    TrainingRun* run = &service_.run();
    const int64_t connection = connection_;
    switch (in_.kind_case()) {
      case v1::WorkerMessage::kLeaseRequest:
        boost::asio::post(service_.io(), [run, connection,
                                          version = service_.CachedVersion(in_.lease_request().cached_run_id(),
                                                                           in_.lease_request().cached_version())] {
          run->OnLeaseRequest(connection, version);
        });
        break;
      case v1::WorkerMessage::kGradientChunk: {
        auto chunk = std::make_shared<engine::GradientChunk>();
        chunk->lease_id = in_.gradient_chunk().lease_id();
        chunk->chunk = protos::FromProto(std::move(*in_.mutable_gradient_chunk()->mutable_chunk()));
        boost::asio::post(service_.io(), [run, connection, chunk] { run->OnGradientChunk(connection, std::move(*chunk)); });
        break;
      }
      case v1::WorkerMessage::kParamRequest:
        boost::asio::post(service_.io(), [run, connection, request = in_.param_request()] {
          run->OnParamRequest(connection, request.run_id(), request.version(), request.offset());
        });
        break;
      case v1::WorkerMessage::kCommit:
        boost::asio::post(service_.io(), [run, connection, commit = protos::FromProto(in_.commit())] {
          run->OnCommit(connection, commit);
        });
        break;
      default:
        boost::asio::post(service_.io(), [run, connection] {
          run->OnBadMessage(connection, InvalidArgumentError("unexpected message kind after Hello"));
        });
        break;
    }
  }

  void ReportGone(const std::string& reason) {
    if (connection_ == 0 || gone_reported_) return;
    gone_reported_ = true;
    TrainingRun* run = &service_.run();
    boost::asio::post(service_.io(),
                      [run, connection = connection_, reason] { run->OnDisconnected(connection, reason); });
  }

  ClusterService& service_;
  grpc::CallbackServerContext* context_;
  std::shared_ptr<StreamLink> link_;
  grpc::ByteBuffer in_bytes_;  // target of the one outstanding read
  v1::WorkerMessage in_;       // in_bytes_, parsed
  int64_t connection_ = 0;  // 0 until a valid Hello
  bool gone_reported_ = false;
  std::shared_ptr<WorkStream> self_;  // keeps the reactor alive until OnDone
};

}  // namespace

ClusterService::ClusterService(ClusterIdentity identity, boost::asio::io_context& io, TrainingRun& run)
    : identity_(std::move(identity)), io_(io), run_(run) {}

std::shared_ptr<const ParamWire> ClusterService::ParamMessages(const std::shared_ptr<const ParamSnapshot>& params) {
  std::lock_guard<std::mutex> lock(mu_);
  if (param_source_ != params) {
    auto wire = std::make_shared<ParamWire>();
    const auto n = static_cast<int64_t>(params->params.size());
    for (v1::FloatChunk& chunk : protos::MakeChunks(params->params.data(), n, identity_.param_chunk_bytes, identity_.wire)) {
      v1::CoordinatorMessage message;
      v1::ParamChunk* param = message.mutable_param_chunk();
      param->set_version(params->version);
      param->set_run_id(identity_.run_id);
      wire->offsets.push_back(chunk.offset());
      *param->mutable_chunk() = std::move(chunk);
      grpc::ByteBuffer bytes;
      const grpc::Status serialized = protos::SerializeRaw(message, &bytes);
      LANLM_CHECK(serialized.ok(), serialized.error_message());  // a message built here always serializes
      wire->messages.push_back(std::move(bytes));
    }
    param_wire_ = std::move(wire);
    param_source_ = params;
  }
  return param_wire_;
}

int64_t ClusterService::CachedVersion(const std::string& cached_run, int64_t cached_version) const {
  if (cached_run == identity_.run_id) return cached_version;
  if (cached_version >= 0) {
    spdlog::info("a worker holds version {} of another run ({}); it gets this run's parameters", cached_version,
                 cached_run.empty() ? "none" : cached_run.substr(0, 32));
  }
  return -1;  // another run's step numbers mean nothing here
}

StatusOr<std::string> ClusterService::ClaimWorkerId(const std::string& worker_id, const std::string& peer,
                                                    std::string* relay_address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = joined_.find(worker_id);
  if (it == joined_.end()) return NotFoundError("unknown worker_id '" + worker_id.substr(0, 64) + "'; call Join first");
  Joined& joined = it->second;
  if (joined.host != PeerHost(peer)) {
    return Status(StatusCode::kPermissionDenied,
                  "worker_id " + worker_id + " joined from " + joined.host + ", not from " + PeerHost(peer));
  }
  if (joined.claimed) {
    return Status(StatusCode::kPermissionDenied, "worker_id " + worker_id + " already has a Work stream; call Join");
  }
  joined.claimed = true;
  *relay_address = joined.relay_address;
  return joined.name;
}

namespace {

// FAILED_PRECONDITION unless the worker lists the run's precision (an empty list means fp32).
Status CheckPrecision(const v1::JoinRequest& request, engine::Precision run) {
  const std::string want = engine::PrecisionName(run);
  std::string offered;
  for (const std::string& p : request.precisions()) {
    if (p == want) return OkStatus();
    if (!offered.empty()) offered += ", ";
    offered.append(p, 0, 16);  // appends, not operator+: GCC 12's LTO warns on the temporary
  }
  if (request.precisions().empty()) {
    if (run == engine::Precision::kFp32) return OkStatus();
    offered = "fp32";
  }
  return FailedPreconditionError("precision " + want + " (coordinator) is not among what this worker computes "
                                 "exactly: " + offered + " (worker)");
}

}  // namespace

grpc::ServerUnaryReactor* ClusterService::Join(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                               grpc::ByteBuffer* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  v1::JoinRequest parsed;
  v1::JoinReply answer;
  grpc::ByteBuffer bytes(*request);
  Status status = protos::CheckClusterToken(*context, identity_.token);
  if (status.ok()) status = protos::ParseRaw(bytes, &parsed);
  if (status.ok()) status = Admit(context, &parsed, &answer);
  if (!status.ok()) {
    spdlog::warn("join refused ({}): {}", context->peer(), status.ToString());
    reactor->Finish(protos::ToGrpcStatus(status));
  } else {
    reactor->Finish(protos::SerializeRaw(answer, reply));
  }
  return reactor;
}

Status ClusterService::Admit(grpc::CallbackServerContext* context, const v1::JoinRequest* request,
                             v1::JoinReply* reply) {
  if (request->protocol_version() != v1::PROTOCOL_VERSION_CURRENT) {
    return FailedPreconditionError("protocol version " + std::to_string(request->protocol_version()) +
                                   " (worker) != " + std::to_string(v1::PROTOCOL_VERSION_CURRENT) + " (coordinator)");
  }
  if (request->model_config_hash() != 0 && request->model_config_hash() != identity_.config_hash) {
    return FailedPreconditionError("model config hash " + Hex(request->model_config_hash()) + " (worker) != " +
                                   Hex(identity_.config_hash) + " (coordinator, " + identity_.config.ToString() + ")");
  }
  if (request->tokenizer_hash() != 0 && request->tokenizer_hash() != identity_.tokenizer_hash) {
    return FailedPreconditionError("tokenizer hash " + Hex(request->tokenizer_hash()) +
                                   " (worker) != " + Hex(identity_.tokenizer_hash) + " (coordinator)");
  }
  LANLM_RETURN_IF_ERROR(CheckPrecision(*request, identity_.precision));
  if (request->worker_name().size() > 128) {
    return InvalidArgumentError("worker_name has " + std::to_string(request->worker_name().size()) +
                                " bytes, more than 128");
  }
  if (request->threads() < 0) return InvalidArgumentError("threads = " + std::to_string(request->threads()) + " < 0");
  if (!request->relay_address().empty()) {
    LANLM_RETURN_IF_ERROR(protos::CheckHostPort(request->relay_address(), "relay_address"));
  }
  if (!run_.accepting()) return UnavailableError("coordinator is shutting down");

  std::string worker_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    worker_id = "w" + std::to_string(next_worker_++);
    joined_[worker_id] = {request->worker_name().empty() ? context->peer() : request->worker_name(),
                          PeerHost(context->peer()), false, request->relay_address()};
  }
  reply->set_worker_id(worker_id);
  protos::ToProto(identity_.config, reply->mutable_model_config());
  reply->set_model_config_hash(identity_.config_hash);
  reply->set_tokenizer_hash(identity_.tokenizer_hash);
  reply->set_micro_batch(identity_.micro_batch);
  reply->set_parameter_count(identity_.parameter_count);
  reply->set_max_chunk_bytes(protos::kMaxChunkBytes);
  reply->set_lease_timeout_ms(identity_.lease_timeout_ms);
  reply->set_wire_format(static_cast<v1::WireFormat>(identity_.wire));
  if (identity_.local_steps > 0) protos::ToProto(identity_.adamw, identity_.local_steps, reply->mutable_inner());
  reply->set_run_id(identity_.run_id);
  reply->set_precision(engine::PrecisionName(identity_.precision));
  spdlog::info("join: worker {} = {} ({} threads) from {}", worker_id, request->worker_name(), request->threads(),
               context->peer());
  return OkStatus();
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ClusterService::Work(
    grpc::CallbackServerContext* context) {
  auto stream = std::make_shared<WorkStream>(*this, context);
  stream->Start();
  return stream.get();
}

}  // namespace lanlm::coordinator
