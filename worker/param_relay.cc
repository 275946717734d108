// The parameter relay's feed, service, server and client; see param_relay.h.
#include "worker/param_relay.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "protos/cluster_auth.h"
#include "protos/convert.h"
#include "protos/tls.h"

namespace lanlm::worker {

void ParamFeed::Append(std::shared_ptr<const v1::ParamChunk> chunk) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    chunks_.push_back(std::move(chunk));
  }
  cv_.notify_all();
}

void ParamFeed::Complete() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    complete_ = true;
  }
  cv_.notify_all();
}

void ParamFeed::Drop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (complete_) return;  // a complete version stays servable
    dropped_ = true;
  }
  cv_.notify_all();
}

ParamFeed::Next ParamFeed::Wait(size_t index, std::chrono::milliseconds timeout,
                                std::shared_ptr<const v1::ParamChunk>* chunk) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return index < chunks_.size() || complete_ || dropped_; });
  if (index < chunks_.size()) {
    *chunk = chunks_[index];
    return Next::kChunk;
  }
  if (complete_) return Next::kEnd;
  return dropped_ ? Next::kDropped : Next::kTimeout;
}

RelayService::RelayService(std::string token, std::chrono::milliseconds version_wait)
    : token_(std::move(token)), version_wait_(version_wait) {}

void RelayService::Publish(std::shared_ptr<ParamFeed> feed) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    feed_ = std::move(feed);
  }
  cv_.notify_all();
}

void RelayService::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

std::shared_ptr<ParamFeed> RelayService::FindFeed(const v1::RelayParamsRequest& request, grpc::ServerContext* context,
                                                  grpc::Status* status) {
  const auto deadline = std::chrono::steady_clock::now() + version_wait_;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (closed_) break;
    if (feed_ && feed_->run_id() == request.run_id()) {
      if (feed_->version() == request.version()) return feed_;
      if (feed_->version() > request.version()) break;  // gone: it will not come back
    }
    if (context->IsCancelled() || std::chrono::steady_clock::now() >= deadline) break;
    cv_.wait_for(lock, std::chrono::milliseconds(50));
  }
  if (closed_) {
    *status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "this worker is stopping");
  } else {
    *status = grpc::Status(
        grpc::StatusCode::NOT_FOUND,
        "this worker does not hold version " + std::to_string(request.version()) + " of run " + request.run_id() +
            (feed_ ? " (it holds version " + std::to_string(feed_->version()) + " of run " + feed_->run_id() + ")"
                   : " (it holds no parameters)"));
  }
  return nullptr;
}

grpc::Status RelayService::Params(grpc::ServerContext* context, const v1::RelayParamsRequest* request,
                                  grpc::ServerWriter<v1::ParamChunk>* writer) {
  if (Status auth = protos::CheckClusterToken(*context, token_); !auth.ok()) return protos::ToGrpcStatus(auth);
  const std::string& run = request->run_id();
  if (run.size() != 32 || run.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "run_id '" + run.substr(0, 40) + "' is not 32 lowercase hex digits");
  }
  if (request->version() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "version " + std::to_string(request->version()) + " < 0");
  }
  grpc::Status status;
  std::shared_ptr<ParamFeed> feed = FindFeed(*request, context, &status);
  if (!feed) return status;
  for (size_t i = 0;;) {
    std::shared_ptr<const v1::ParamChunk> chunk;
    switch (feed->Wait(i, std::chrono::milliseconds(100), &chunk)) {
      case ParamFeed::Next::kChunk:
        if (!writer->Write(*chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "the peer went away");
        bytes_served_ += static_cast<int64_t>(chunk->chunk().data().size());
        ++i;
        break;
      case ParamFeed::Next::kEnd:
        return grpc::Status::OK;
      case ParamFeed::Next::kDropped:
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "this worker gave version " + std::to_string(feed->version()) + " up before it was complete");
      case ParamFeed::Next::kTimeout: {
        if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "the peer went away");
        std::lock_guard<std::mutex> lock(mu_);
        if (closed_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "this worker is stopping");
        break;
      }
    }
  }
}

StatusOr<std::unique_ptr<RelayServer>> RelayServer::Start(const std::string& listen, const std::string& token,
                                                          std::chrono::milliseconds version_wait,
                                                          const protos::ClientTlsOptions& tls) {
  LANLM_RETURN_IF_ERROR(protos::CheckHostPort(listen, "--relay-listen", /*port_zero_ok=*/true));
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (tls.enabled()) {
    // The worker's own certificate, and only peers with a certificate of the cluster's CA.
    LANLM_ASSIGN_OR_RETURN(credentials, protos::MakeServerCredentials({.cert_file = tls.cert_file,
                                                                       .key_file = tls.key_file,
                                                                       .client_ca_file = tls.ca_file}));
  }
  std::unique_ptr<RelayServer> relay(new RelayServer(token, version_wait));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, credentials, &relay->port_);
  builder.SetMaxSendMessageSize(protos::kMaxMessageBytes);
  builder.SetMaxReceiveMessageSize(64 << 10);  // requests are tiny
  builder.RegisterService(&relay->service_);
  relay->server_ = builder.BuildAndStart();
  if (!relay->server_ || relay->port_ == 0) {
    return InvalidArgumentError("--relay-listen " + listen + ": cannot listen there (address in use, or not this host's)");
  }
  return relay;
}

RelayServer::~RelayServer() {
  service_.Close();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

namespace {

// Cancels a client call when no progress was reported for `stall`. One thread per fetch (a
// fetch is one per lease at most), woken at the due time or when stopped.
class StallWatch {
 public:
  using Clock = std::chrono::steady_clock;
  StallWatch(grpc::ClientContext* context, std::chrono::milliseconds stall)
      : context_(context), stall_(stall), last_(Clock::now()), thread_([this] { Run(); }) {}
  ~StallWatch() { Stop(); }
  void Progress() {
    std::lock_guard<std::mutex> lock(mu_);
    last_ = Clock::now();
  }
  // Joins the watcher; true when it cancelled the call.
  bool Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return fired_;
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!done_) {
      const Clock::time_point due = last_ + stall_;
      if (Clock::now() >= due) {
        fired_ = true;
        context_->TryCancel();
        return;
      }
      cv_.wait_until(lock, due);
    }
  }

  grpc::ClientContext* context_;
  const std::chrono::milliseconds stall_;
  std::mutex mu_;
  std::condition_variable cv_;
  Clock::time_point last_;  // guarded by mu_
  bool done_ = false;       // guarded by mu_
  bool fired_ = false;      // written by the watcher; read after the join
  std::thread thread_;      // last: starts once the members above exist
};

}  // namespace

Status FetchFromPeer(const std::string& address, const std::string& run_id, int64_t version,
                     grpc::ClientContext* context, const std::function<Status(const v1::ParamChunk&)>& on_chunk,
                     std::chrono::milliseconds stall, const protos::ClientTlsOptions& tls) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(protos::kMaxMessageBytes);
  std::shared_ptr<grpc::Channel> channel;
  if (tls.enabled()) {
    protos::ClientTlsOptions relay_tls = tls;
    relay_tls.server_name = kRelayTlsName;
    LANLM_ASSIGN_OR_RETURN(channel, protos::MakeChannel(address, relay_tls, args));
  } else {
    channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  }
  auto stub = v1::Relay::NewStub(channel);
  v1::RelayParamsRequest request;
  request.set_run_id(run_id);
  request.set_version(version);
  StallWatch watch(context, stall);
  std::unique_ptr<grpc::ClientReader<v1::ParamChunk>> reader = stub->Params(context, request);
  v1::ParamChunk chunk;
  Status kept;
  while (kept.ok() && reader->Read(&chunk)) {
    watch.Progress();
    kept = on_chunk(chunk);
  }
  if (!kept.ok()) {
    context->TryCancel();
    reader->Finish();
    return kept;
  }
  const grpc::Status finished = reader->Finish();
  if (watch.Stop() && !finished.ok()) {
    return UnavailableError("peer " + address + " sent no parameter chunk for " + std::to_string(stall.count()) +
                            " ms (the worker's --relay-stall-ms)");
  }
  if (tls.enabled() && protos::IsTlsFailure(finished)) {
    return UnavailableError(finished.error_message() + " (the relay's TLS handshake with " + address +
                            " failed: each worker's --tls-cert must be a worker certificate of this version's "
                            "deploy/make-certs.sh, which names " + kRelayTlsName + " and allows serverAuth)");
  }
  return protos::FromGrpcStatus(finished);
}

}  // namespace lanlm::worker
