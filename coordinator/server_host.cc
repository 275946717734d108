// Server and loop scaffolding of the coordinator; see server_host.h.
#include "coordinator/server_host.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>

#include "protos/convert.h"

namespace lanlm::coordinator {
namespace {

// Removes gRPC's reflection plugin from one server's builder.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    std::erase_if(*plugins, [](const auto& plugin) { return plugin->name() == "proto_server_reflection"; });
  }
};

}  // namespace

Status ServerHost::Start(const std::string& listen, const HostSecurity& security,
                         const std::vector<grpc::Service*>& services, StatusService::Provider status, Extras extras,
                         std::function<void(const std::string&)> on_signal) {
  extras_ = std::move(extras);
  status_service_ = std::make_unique<StatusService>(
      [this, status = std::move(status)](v1::GetStatusReply* reply) {
        status(reply);
        if (extras_.fill_status) extras_.fill_status(reply);
      },
      security.client_tokens);
  grpc::EnableDefaultHealthCheckService(true);
  // gRPC's reflection plugin joins every server of the process (libgrpc++_reflection registers
  // it when loaded); without --reflection this server's builder drops it.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  if (!security.tls && !protos::IsLoopbackAddress(listen)) {
    spdlog::warn(
        "--listen={} serves in plaintext beyond this host: tokens and parameters cross the network "
        "readable; give --tls-cert/--tls-key (deploy/make-certs.sh)",
        listen);
  }
  grpc::ServerBuilder builder;
  if (!security.reflection) builder.SetOption(std::make_unique<WithoutReflection>());
  builder.SetMaxReceiveMessageSize(std::max(protos::kMaxMessageBytes, extras_.max_receive_bytes));
  builder.SetMaxSendMessageSize(protos::kMaxMessageBytes);
  // A second coordinator on the same port must fail to start, not silently share the
  // port's connections with the first (gRPC sets SO_REUSEPORT by default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(listen, security.credentials ? security.credentials : grpc::InsecureServerCredentials(),
                           &port_);
  for (grpc::Service* service : services) builder.RegisterService(service);
  builder.RegisterService(status_service_.get());
  for (auto& service : extras_.services) builder.RegisterService(service.get());
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) return UnavailableError("cannot listen on --listen=" + listen);
  work_ = std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(io_.get_executor());
  if (on_signal) {
    signals_ = std::make_unique<boost::asio::signal_set>(io_, SIGINT, SIGTERM);
    signals_->async_wait([on_signal = std::move(on_signal)](const boost::system::error_code& ec, int signal) {
      if (!ec) on_signal(signal == SIGINT ? "SIGINT" : "SIGTERM");
    });
  }
  loop_ = std::thread([this] { io_.run(); });
  return OkStatus();
}

void ServerHost::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (extras_.before_shutdown) extras_.before_shutdown();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + grace);
  if (signals_) signals_->cancel();
  work_.reset();
  io_.stop();
  if (loop_.joinable()) loop_.join();
  server_.reset();  // before the caller's services go
}

ServerHost::~ServerHost() { Shutdown(std::chrono::milliseconds(0)); }

}  // namespace lanlm::coordinator
