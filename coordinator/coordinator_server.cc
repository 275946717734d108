// TrainingServer wiring; see coordinator_server.h.
#include "coordinator/coordinator_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <algorithm>
#include <cinttypes>
#include <csignal>
#include <cstdio>

#include "engine/io/atomic_file.h"
#include "protos/cluster_auth.h"
#include "protos/convert.h"

namespace lanlm::coordinator {

void ConfigureBuilder(grpc::ServerBuilder& builder, int max_receive_bytes) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  builder.SetMaxReceiveMessageSize(std::max(protos::kMaxMessageBytes, max_receive_bytes));
  builder.SetMaxSendMessageSize(protos::kMaxMessageBytes);
  // A second coordinator on the same port must fail to start, not silently share the
  // port's connections with the first (gRPC sets SO_REUSEPORT by default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
}

StatusOr<std::unique_ptr<TrainingServer>> TrainingServer::Start(const CoordinatorOptions& options, bool steps_flag_set,
                                                                bool handle_signals, ExtraServices extra) {
  LANLM_ASSIGN_OR_RETURN(std::string token,
                         protos::ResolveClusterToken(options.cluster_token, options.cluster_token_file));
  const int per_lease = options.shards_per_lease;
  if (per_lease < 1 || per_lease > protos::kMaxShardsPerLease || (per_lease & (per_lease - 1)) != 0) {
    return InvalidArgumentError("--shards-per-lease " + std::to_string(per_lease) + " is not a power of two in [1, " +
                                std::to_string(protos::kMaxShardsPerLease) + "]");
  }
  if (!options.checkpoint_dir.empty()) {
    LANLM_RETURN_IF_ERROR(engine::PrepareWritableDir(options.checkpoint_dir, "--checkpoint-dir"));
  }
  LANLM_ASSIGN_OR_RETURN(RunSetup setup, PrepareRun(options, steps_flag_set));

  std::unique_ptr<TrainingServer> server(new TrainingServer());
  TrainingServer* self = server.get();
  self->done_future_ = self->done_.get_future();
  self->pool_ = std::make_unique<engine::ThreadPool>(options.threads);

  ClusterIdentity identity;
  identity.config = setup.train.model;
  identity.config_hash = setup.train.model.Hash();
  identity.tokenizer_hash = setup.tokenizer->Hash();
  identity.micro_batch = setup.train.micro_batch;
  identity.parameter_count = static_cast<int64_t>(setup.state.params.size());
  identity.lease_timeout_ms = options.lease_timeout_ms;
  identity.run_id = setup.run_id;
  identity.token = std::move(token);

  RunSettings settings;
  settings.min_workers = options.min_workers;
  settings.lease_timeout = std::chrono::milliseconds(options.lease_timeout_ms);
  settings.shards_per_lease = per_lease;
  settings.checkpoint_dir = options.checkpoint_dir;
  settings.checkpoint_every = options.checkpoint_every;
  settings.stop_after = options.stop_after;
  self->run_ = std::make_unique<TrainingRun>(std::move(setup), settings, self->io_, *self->pool_,
                                             [self](const RunResult& result) { self->done_.set_value(result); });
  self->cluster_service_ = std::make_unique<ClusterService>(std::move(identity), self->io_, *self->run_);
  TrainingRun* run = self->run_.get();
  if (extra) self->extras_ = extra([run] { return run->Snapshot(); }, *self->pool_);
  const std::string config_text = run->options().model.ToString();
  self->status_service_ = std::make_unique<StatusService>([run, config_text, self](v1::GetStatusReply* reply) {
    const RunStatus status = run->status();
    reply->set_mode(status.mode);
    reply->set_step(status.step);
    reply->set_total_steps(status.total_steps);
    reply->set_loss(status.loss);
    reply->set_tokens_per_second(status.tokens_per_second);
    reply->set_workers(status.workers);
    reply->set_model_config(config_text);
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016" PRIx64, status.fingerprint);
    reply->set_fingerprint(hex);
    reply->set_last_checkpoint(status.last_checkpoint);
    reply->set_checkpoint_error(status.checkpoint_error);
    reply->set_checkpoint_failures(status.checkpoint_failures);
    if (self->extras_.fill_status) self->extras_.fill_status(reply);
  });

  grpc::ServerBuilder builder;
  ConfigureBuilder(builder, self->extras_.max_receive_bytes);
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &self->port_);
  builder.RegisterService(self->cluster_service_.get());
  builder.RegisterService(self->status_service_.get());
  for (auto& service : self->extras_.services) builder.RegisterService(service.get());
  self->server_ = builder.BuildAndStart();
  if (!self->server_ || self->port_ == 0) {
    return UnavailableError("cannot listen on --listen=" + options.listen);
  }
  self->work_ = std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
      self->io_.get_executor());
  if (handle_signals) {
    self->signals_ = std::make_unique<boost::asio::signal_set>(self->io_, SIGINT, SIGTERM);
    self->signals_->async_wait([run](const boost::system::error_code& ec, int signal) {
      if (!ec) run->Stop(signal == SIGINT ? "SIGINT" : "SIGTERM");
    });
  }
  self->loop_ = std::thread([self] { self->io_.run(); });
  boost::asio::post(self->io_, [run] { run->Start(); });
  return server;
}

void TrainingServer::Stop(const std::string& reason) {
  TrainingRun* run = run_.get();
  boost::asio::post(io_, [run, reason] { run->Stop(reason); });
}

RunResult TrainingServer::Wait() {
  if (waited_) return result_;
  waited_ = true;
  result_ = done_future_.get();
  if (extras_.before_shutdown) extras_.before_shutdown();
  // Each worker closes its Work stream once it has read the Shutdown (TrainingRun::End); wait
  // for that, then cancel what is left (a stalled or still-computing worker).
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (signals_) signals_->cancel();
  work_.reset();
  io_.stop();
  if (loop_.joinable()) loop_.join();
  return result_;
}

TrainingServer::~TrainingServer() {
  if (!waited_ && loop_.joinable()) {
    Stop("server destroyed");
    Wait();
  }
}

}  // namespace lanlm::coordinator
