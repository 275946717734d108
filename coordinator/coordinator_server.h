// TrainingServer: one training coordinator in a process: the gRPC server (Cluster,
// ClusterStatus, health, reflection, plus any extra services such as Generate), the loop
// thread running the Boost.Asio io_context (TrainingRun, lease timers, signals) and the
// optimizer's thread pool. lanlm-coordinator's main and the in-process tests both use it.
#pragma once

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <grpcpp/grpcpp.h>

#include "coordinator/cluster_service.h"
#include "coordinator/param_snapshot.h"
#include "coordinator/run_config.h"
#include "coordinator/status_service.h"
#include "coordinator/training_run.h"
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
};
using ExtraServices = std::function<Extras(SnapshotSource, engine::ThreadPool&)>;

// Common server settings: message size limits (max_receive_bytes, when above the cluster's
// protos::kMaxMessageBytes, raises the receive limit), health service and reflection.
void ConfigureBuilder(grpc::ServerBuilder& builder, int max_receive_bytes = 0);

class TrainingServer {
 public:
  // Prepares the run, binds options.listen and starts training. handle_signals installs
  // SIGINT/SIGTERM handlers that stop the run gracefully (main only; tests leave it off).
  static StatusOr<std::unique_ptr<TrainingServer>> Start(const CoordinatorOptions& options, bool steps_flag_set,
                                                         bool handle_signals, ExtraServices extra = nullptr);
  ~TrainingServer();

  int port() const { return port_; }
  TrainingRun& run() { return *run_; }
  // Blocks until the run ends (finished or stopped), then shuts the server down.
  RunResult Wait();
  // Thread-safe graceful stop (what SIGTERM does).
  void Stop(const std::string& reason);

 private:
  TrainingServer() = default;

  std::unique_ptr<engine::ThreadPool> pool_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::unique_ptr<boost::asio::signal_set> signals_;
  std::unique_ptr<TrainingRun> run_;
  std::unique_ptr<ClusterService> cluster_service_;
  std::unique_ptr<StatusService> status_service_;
  Extras extras_;
  std::unique_ptr<grpc::Server> server_;
  std::thread loop_;
  std::promise<RunResult> done_;
  std::future<RunResult> done_future_;
  bool waited_ = false;
  RunResult result_;
  int port_ = 0;
};

}  // namespace lanlm::coordinator
