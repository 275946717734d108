// Join, worker admission and the parameter wire cache; see cluster_service.h. The Work stream's
// reactor is in work_stream.cc.
#include "coordinator/cluster_service.h"

#include <spdlog/spdlog.h>

#include "engine/base/hash.h"
#include "protos/cluster_auth.h"
#include "protos/convert.h"
#include "protos/raw_message.h"
#include "protos/tls.h"

namespace lanlm::coordinator {
namespace {

std::string Hex(uint64_t v) { return "0x" + engine::Hex16(v); }

// "ipv4:10.0.0.5:41234" -> "ipv4:10.0.0.5" (a host keeps its address across connections, not
// its port).
std::string PeerHost(const std::string& peer) {
  const size_t colon = peer.rfind(':');
  return colon == std::string::npos || colon < peer.find(':') + 1 ? peer : peer.substr(0, colon);
}

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

}  // namespace lanlm::coordinator
