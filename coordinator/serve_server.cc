// Serving a checkpoint; see serve_server.h.
#include "coordinator/serve_server.h"

#include <spdlog/spdlog.h>

#include "engine/io/checkpoint.h"
#include "engine/base/hash.h"

namespace lanlm::coordinator {

StatusOr<std::unique_ptr<ServeServer>> ServeServer::Start(const std::string& checkpoint, const std::string& listen,
                                                          int threads, bool handle_signals, ExtraServices extra,
                                                          const HostSecurity& security) {
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
  Extras extras;
  if (extra) extras = extra([snapshot] { return std::shared_ptr<const ParamSnapshot>(snapshot); }, *self->pool_);
  if (!extras.refusal.ok()) return Status(extras.refusal.code(), "--serve " + checkpoint + ": " + extras.refusal.message());
  const std::string fingerprint =
      engine::Hex16(engine::Fingerprint(snapshot->params.data(), static_cast<int64_t>(snapshot->params.size())));
  auto status = [snapshot, fingerprint](v1::GetStatusReply* reply) {
    reply->set_mode("serving");
    reply->set_step(snapshot->version);
    reply->set_model_config(snapshot->config.ToString());
    reply->set_fingerprint(fingerprint);
  };
  std::function<void(const std::string&)> on_signal;
  if (handle_signals) on_signal = [self](const std::string& signal) { self->Stop(signal); };
  LANLM_RETURN_IF_ERROR(
      self->host_.Start(listen, security, {}, std::move(status), std::move(extras), std::move(on_signal)));
  spdlog::info("serving {} (step {}, model {}, fingerprint {}) on port {}", checkpoint, snapshot->version,
               snapshot->config.ToString(), fingerprint, self->host_.port());
  return server;
}

void ServeServer::Stop(const std::string& reason) {
  std::call_once(stop_once_, [&] { stop_.set_value(reason); });
}

std::string ServeServer::Wait() {
  if (waited_) return "";
  waited_ = true;
  const std::string reason = stopped_.get();
  host_.Shutdown(std::chrono::seconds(2));
  return reason;
}

ServeServer::~ServeServer() {
  if (!waited_ && host_.port() != 0) {
    Stop("server destroyed");
    Wait();
  }
}

}  // namespace lanlm::coordinator
