// TrainingServer: one training coordinator in a process: the Cluster service and the
// TrainingRun in a ServerHost (gRPC server with ClusterStatus, health, reflection and extra
// services such as Generate; the loop thread running lease timers and signals), and the
// optimizer's thread pool. lanlm-coordinator's main and the in-process tests both use it.
#pragma once

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/cluster_service.h"
#include "coordinator/param_snapshot.h"
#include "coordinator/run_config.h"
#include "coordinator/server_host.h"
#include "coordinator/training_run.h"
#include "engine/base/thread_pool.h"

namespace lanlm::coordinator {

class TrainingServer {
 public:
  // Prepares the run, binds options.listen and starts training. handle_signals installs
  // SIGINT/SIGTERM handlers that stop the run gracefully (main only; tests leave it off).
  // security: LoadSecurity(options.security) (default: plaintext, open).
  static StatusOr<std::unique_ptr<TrainingServer>> Start(const CoordinatorOptions& options, const GivenFlags& given,
                                                         bool handle_signals, ExtraServices extra = nullptr,
                                                         const HostSecurity& security = {});
  ~TrainingServer();

  int port() const { return host_.port(); }
  TrainingRun& run() { return *run_; }
  const StatusService::Provider& status_provider() const { return host_.status_provider(); }
  // Blocks until the run ends (finished or stopped), then shuts the server down.
  RunResult Wait();
  // Thread-safe graceful stop (what SIGTERM does).
  void Stop(const std::string& reason);

 private:
  TrainingServer() = default;

  std::unique_ptr<engine::ThreadPool> pool_;
  ServerHost host_;  // outlives the run and the service, which use its loop
  std::unique_ptr<TrainingRun> run_;
  std::unique_ptr<ClusterService> cluster_service_;
  std::promise<RunResult> done_;
  std::future<RunResult> done_future_;
  bool waited_ = false;
  RunResult result_;
};

}  // namespace lanlm::coordinator
