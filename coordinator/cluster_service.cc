// Join and the Work stream reactor; see cluster_service.h.
#include "coordinator/cluster_service.h"

#include <cinttypes>
#include <cstdio>
#include <deque>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "protos/cluster_auth.h"
#include "protos/convert.h"

namespace lanlm::coordinator {
namespace {

using Reactor = grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>;

// "ipv4:10.0.0.5:41234" -> "ipv4:10.0.0.5" (a host keeps its address across connections, not
// its port).
std::string PeerHost(const std::string& peer) {
  const size_t colon = peer.rfind(':');
  return colon == std::string::npos || colon < peer.find(':') + 1 ? peer : peer.substr(0, colon);
}

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%016" PRIx64, v);
  return buf;
}

// The write side of one stream: a queue with one write in flight, and exactly one Finish,
// issued once the queue has drained. Detached when the reactor is done.
class StreamLink final : public WorkerLink {
 public:
  explicit StreamLink(Reactor* reactor) : reactor_(reactor) {}

  void Send(std::shared_ptr<const v1::CoordinatorMessage> message) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (reactor_ == nullptr || closing_ || broken_) return;
    queue_.push_back(std::move(message));
    if (!writing_) {
      writing_ = true;
      reactor_->StartWrite(queue_.front().get());
    }
  }

  void Close(grpc::Status status) override {
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
      reactor_->StartWrite(queue_.front().get());
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
  std::deque<std::shared_ptr<const v1::CoordinatorMessage>> queue_;
  bool writing_ = false;
  bool closing_ = false;
  bool broken_ = false;
  bool finished_ = false;
  grpc::Status status_;
};

class WorkStream final : public Reactor {
 public:
  WorkStream(ClusterService& service, grpc::CallbackServerContext* context)
      : service_(service), context_(context), link_(std::make_shared<StreamLink>(this)) {
    const Status auth = protos::CheckClusterToken(*context, service.identity().token);
    if (!auth.ok()) {
      link_->Close(protos::ToGrpcStatus(auth));
      return;
    }
    if (!service.run().accepting()) {
      link_->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator is shutting down"));
      return;
    }
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      ReportGone(context_->IsCancelled() ? "stream broken" : "worker closed its stream");
      link_->Close(grpc::Status::OK);
      return;
    }
    if (connection_ == 0) {
      if (!OnHello()) return;
    } else {
      auto message = std::make_shared<v1::WorkerMessage>(std::move(in_));
      TrainingRun* run = &service_.run();
      const int64_t connection = connection_;
      boost::asio::post(service_.io(), [run, connection, message] { run->OnMessage(connection, *message); });
    }
    in_.Clear();
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override { link_->OnWriteDone(ok); }

  void OnDone() override {
    link_->Detach();
    ReportGone("stream done");
    delete this;
  }

 private:
  bool OnHello() {
    if (in_.kind_case() != v1::WorkerMessage::kHello) {
      link_->Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first Work message must be a Hello"));
      return false;
    }
    const v1::Hello& hello = in_.hello();
    StatusOr<std::string> name = service_.ClaimWorkerId(hello.worker_id(), context_->peer());
    if (!name.ok()) {
      link_->Close(protos::ToGrpcStatus(name.status()));
      return false;
    }
    connection_ = service_.NextConnectionId();
    TrainingRun* run = &service_.run();
    std::shared_ptr<WorkerLink> link = link_;
    boost::asio::post(service_.io(), [run, connection = connection_, link, id = hello.worker_id(), name = *name,
                                      version = hello.cached_version(), cached_run = hello.cached_run_id()] {
      run->OnConnected(connection, link, id, name, cached_run, version);
    });
    return true;
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
  v1::WorkerMessage in_;
  int64_t connection_ = 0;  // 0 until a valid Hello
  bool gone_reported_ = false;
};

}  // namespace

ClusterService::ClusterService(ClusterIdentity identity, boost::asio::io_context& io, TrainingRun& run)
    : identity_(std::move(identity)), io_(io), run_(run) {}

StatusOr<std::string> ClusterService::ClaimWorkerId(const std::string& worker_id, const std::string& peer) {
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
  return joined.name;
}

grpc::ServerUnaryReactor* ClusterService::Join(grpc::CallbackServerContext* context, const v1::JoinRequest* request,
                                               v1::JoinReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto fail = [&](const Status& status) {
    spdlog::warn("join refused ({}): {}", context->peer(), status.ToString());
    reactor->Finish(protos::ToGrpcStatus(status));
    return reactor;
  };
  if (Status auth = protos::CheckClusterToken(*context, identity_.token); !auth.ok()) return fail(auth);
  if (request->protocol_version() != v1::PROTOCOL_VERSION_CURRENT) {
    return fail(FailedPreconditionError("protocol version " + std::to_string(request->protocol_version()) +
                                        " (worker) != " + std::to_string(v1::PROTOCOL_VERSION_CURRENT) +
                                        " (coordinator)"));
  }
  if (request->model_config_hash() != 0 && request->model_config_hash() != identity_.config_hash) {
    return fail(FailedPreconditionError("model config hash " + Hex(request->model_config_hash()) + " (worker) != " +
                                        Hex(identity_.config_hash) + " (coordinator, " +
                                        identity_.config.ToString() + ")"));
  }
  if (request->tokenizer_hash() != 0 && request->tokenizer_hash() != identity_.tokenizer_hash) {
    return fail(FailedPreconditionError("tokenizer hash " + Hex(request->tokenizer_hash()) + " (worker) != " +
                                        Hex(identity_.tokenizer_hash) + " (coordinator)"));
  }
  if (request->worker_name().size() > 128) {
    return fail(InvalidArgumentError("worker_name has " + std::to_string(request->worker_name().size()) +
                                     " bytes, more than 128"));
  }
  if (request->threads() < 0) return fail(InvalidArgumentError("threads = " + std::to_string(request->threads()) + " < 0"));
  if (!run_.accepting()) return fail(UnavailableError("coordinator is shutting down"));

  std::string worker_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    worker_id = "w" + std::to_string(next_worker_++);
    joined_[worker_id] = {request->worker_name().empty() ? context->peer() : request->worker_name(),
                          PeerHost(context->peer())};
  }
  reply->set_worker_id(worker_id);
  protos::ToProto(identity_.config, reply->mutable_model_config());
  reply->set_model_config_hash(identity_.config_hash);
  reply->set_tokenizer_hash(identity_.tokenizer_hash);
  reply->set_micro_batch(identity_.micro_batch);
  reply->set_parameter_count(identity_.parameter_count);
  reply->set_max_chunk_bytes(protos::kMaxChunkBytes);
  reply->set_lease_timeout_ms(identity_.lease_timeout_ms);
  reply->set_run_id(identity_.run_id);
  spdlog::info("join: worker {} = {} ({} threads) from {}", worker_id, request->worker_name(), request->threads(),
               context->peer());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* ClusterService::Work(
    grpc::CallbackServerContext* context) {
  return new WorkStream(*this, context);
}

}  // namespace lanlm::coordinator
