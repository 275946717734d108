// ServeServer: `lanlm-coordinator --serve --checkpoint FILE`: no corpus, no workers, no
// training; serves the checkpoint's parameters through the extra services (Generate) plus
// ClusterStatus (mode "serving"), health and reflection, until SIGINT/SIGTERM or Stop().
#pragma once

#include <future>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <grpcpp/grpcpp.h>

#include "coordinator/coordinator_server.h"

namespace lanlm::coordinator {

class ServeServer {
 public:
  static StatusOr<std::unique_ptr<ServeServer>> Start(const std::string& checkpoint, const std::string& listen,
                                                      int threads, bool handle_signals, ExtraServices extra);
  ~ServeServer();
  int port() const { return port_; }
  const StatusService::Provider& status_provider() const { return status_service_->provider(); }
  // Blocks until a signal or Stop(), then shuts the server down. Returns the stop reason.
  std::string Wait();
  void Stop(const std::string& reason);  // thread-safe

 private:
  ServeServer() = default;
  std::unique_ptr<engine::ThreadPool> pool_;
  std::shared_ptr<const ParamSnapshot> snapshot_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::unique_ptr<boost::asio::signal_set> signals_;
  std::unique_ptr<StatusService> status_service_;
  Extras extras_;
  std::unique_ptr<grpc::Server> server_;
  std::thread loop_;
  std::promise<std::string> stop_;
  std::future<std::string> stopped_;
  std::once_flag stop_once_;
  bool waited_ = false;
  int port_ = 0;
};

}  // namespace lanlm::coordinator
