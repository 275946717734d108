// ServerHost: what both coordinator modes (TrainingServer, ServeServer) run in: one gRPC server
// (health, reflection with --reflection, TLS and client tokens per HostSecurity, message size
// limits, no port sharing) hosting the mode's services, the
// ClusterStatus service and the extras (Generate), and one Boost.Asio loop thread with optional
// SIGINT/SIGTERM handling. The one place the coordinator builds and stops a server.
#pragma once

#include <grpcpp/grpcpp.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/param_snapshot.h"
#include "coordinator/security.h"
#include "coordinator/status_service.h"
#include "engine/base/status.h"
#include "engine/base/thread_pool.h"

namespace lanlm::coordinator {

// Services hosted next to the coordinator's own (e.g. Generate), reading parameters through
// the snapshot source and sharing the process's engine pool.
struct Extras {
  std::vector<std::unique_ptr<grpc::Service>> services;
  std::function<void(v1::GetStatusReply*)> fill_status;  // optional: adds e.g. sessions
  std::function<void()> before_shutdown;                  // optional: runs before Server::Shutdown
  // Largest message an extra service must receive (e.g. a Generate prompt at
  // --generate-max-prompt-bytes plus headroom); raises the server's receive limit above the
  // cluster's, so the service itself refuses what is too big, naming its flag.
  int max_receive_bytes = 0;
  // Not OK: the services cannot serve this run's model (e.g. --weights q8 for a dim that is not
  // a multiple of 32); the server refuses to start with this error.
  Status refusal;
};
using ExtraServices = std::function<Extras(SnapshotSource, engine::ThreadPool&)>;

class ServerHost {
 public:
  ServerHost() = default;
  ServerHost(const ServerHost&) = delete;
  ServerHost& operator=(const ServerHost&) = delete;
  ~ServerHost();

  // The loop's io_context: the mode posts its work here (also before Start).
  boost::asio::io_context& io() { return io_; }
  int port() const { return port_; }
  // The ClusterStatus snapshot function (after Start), shared with the HTTP endpoint.
  const StatusService::Provider& status_provider() const { return status_service_->provider(); }

  // Binds listen and serves `services` (owned by the caller, which keeps them alive until
  // Shutdown), ClusterStatus (status, then extras.fill_status) and the extras' services; then
  // starts the loop thread. on_signal (null: no handlers) runs on the loop with "SIGINT" or
  // "SIGTERM". security: credentials (null = plaintext, with a warning unless listen is
  // loopback), ClusterStatus's client tokens, reflection. UNAVAILABLE naming the address when
  // it cannot listen.
  Status Start(const std::string& listen, const HostSecurity& security, const std::vector<grpc::Service*>& services,
               StatusService::Provider status, Extras extras, std::function<void(const std::string&)> on_signal);

  // Runs extras.before_shutdown, shuts the server down (in-flight calls get `grace`, then are
  // cancelled), stops and joins the loop. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::unique_ptr<boost::asio::signal_set> signals_;
  std::unique_ptr<StatusService> status_service_;
  Extras extras_;
  std::unique_ptr<grpc::Server> server_;
  std::thread loop_;
  bool shut_down_ = false;
  int port_ = 0;
};

}  // namespace lanlm::coordinator
