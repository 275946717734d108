// The Work stream: one bidirectional call per worker, carrying leases and parameters out and
// gradients in (docs/CLUSTER.md); see cluster_service.h.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <algorithm>
#include <deque>

#include "coordinator/cluster_service.h"
#include "engine/ops/bf16.h"
#include "protos/cluster_auth.h"
#include "protos/convert.h"
#include "protos/raw_message.h"

namespace lanlm::coordinator {
namespace {

// Registered raw (protos/raw_message.h): a message that does not parse ends the stream with
// INVALID_ARGUMENT naming its type, where a typed stream would end OK with no word.
using Reactor = grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>;

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

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ClusterService::Work(
    grpc::CallbackServerContext* context) {
  auto stream = std::make_shared<WorkStream>(*this, context);
  stream->Start();
  return stream.get();
}

}  // namespace lanlm::coordinator
