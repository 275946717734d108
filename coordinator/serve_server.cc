// Serving a checkpoint; see serve_server.h.
#include "coordinator/serve_server.h"

#include <cinttypes>
#include <csignal>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "engine/io/checkpoint.h"
#include "engine/base/hash.h"

namespace lanlm::coordinator {

StatusOr<std::unique_ptr<ServeServer>> ServeServer::Start(const std::string& checkpoint, const std::string& listen,
                                                          int threads, bool handle_signals, ExtraServices extra) {
  if (checkpoint.empty()) return InvalidArgumentError("--serve needs --checkpoint FILE");
  LANLM_ASSIGN_OR_RETURN(engine::Checkpoint loaded, engine::LoadCheckpoint(checkpoint));
  LANLM_ASSIGN_OR_RETURN(engine::BpeTokenizer tokenizer, engine::BpeTokenizer::Deserialize(loaded.tokenizer));
  auto snapshot = std::make_shared<ParamSnapshot>();
  snapshot->config = loaded.config;
  snapshot->params = std::move(loaded.params);
  snapshot->version = loaded.step;
  snapshot->tokenizer = std::make_shared<const engine::BpeTokenizer>(std::move(tokenizer));

  std::unique_ptr<ServeServer> server(new ServeServer());
  ServeServer* self = server.get();
  self->stopped_ = self->stop_.get_future();
  self->pool_ = std::make_unique<engine::ThreadPool>(threads);
  self->snapshot_ = snapshot;
  if (extra) self->extras_ = extra([snapshot] { return std::shared_ptr<const ParamSnapshot>(snapshot); }, *self->pool_);
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016" PRIx64,
                engine::Fingerprint(snapshot->params.data(), static_cast<int64_t>(snapshot->params.size())));
  const std::string fingerprint = hex;
  self->status_service_ = std::make_unique<StatusService>([self, fingerprint](v1::GetStatusReply* reply) {
    reply->set_mode("serving");
    reply->set_step(self->snapshot_->version);
    reply->set_model_config(self->snapshot_->config.ToString());
    reply->set_fingerprint(fingerprint);
    if (self->extras_.fill_status) self->extras_.fill_status(reply);
  });

  grpc::ServerBuilder builder;
  ConfigureBuilder(builder, self->extras_.max_receive_bytes);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &self->port_);
  builder.RegisterService(self->status_service_.get());
  for (auto& service : self->extras_.services) builder.RegisterService(service.get());
  self->server_ = builder.BuildAndStart();
  if (!self->server_ || self->port_ == 0) return UnavailableError("cannot listen on --listen=" + listen);
  self->work_ = std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
      self->io_.get_executor());
  if (handle_signals) {
    self->signals_ = std::make_unique<boost::asio::signal_set>(self->io_, SIGINT, SIGTERM);
    self->signals_->async_wait([self](const boost::system::error_code& ec, int signal) {
      if (!ec) self->Stop(signal == SIGINT ? "SIGINT" : "SIGTERM");
    });
  }
  self->loop_ = std::thread([self] { self->io_.run(); });
  spdlog::info("serving {} (step {}, model {}, fingerprint {}) on port {}", checkpoint, snapshot->version,
               snapshot->config.ToString(), fingerprint, self->port_);
  return server;
}

void ServeServer::Stop(const std::string& reason) {
  std::call_once(stop_once_, [&] { stop_.set_value(reason); });
}

std::string ServeServer::Wait() {
  if (waited_) return "";
  waited_ = true;
  const std::string reason = stopped_.get();
  if (extras_.before_shutdown) extras_.before_shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (signals_) signals_->cancel();
  work_.reset();
  io_.stop();
  if (loop_.joinable()) loop_.join();
  return reason;
}

ServeServer::~ServeServer() {
  if (!waited_ && loop_.joinable()) {
    Stop("server destroyed");
    Wait();
  }
}

}  // namespace lanlm::coordinator
