// ServeServer: `lanlm-coordinator --serve --checkpoint FILE`: no corpus, no workers, no
// training; serves the checkpoint's parameters through the extra services (Generate) plus
// ClusterStatus (mode "serving"), health and reflection, until SIGINT/SIGTERM or Stop().
#pragma once

#include <future>
#include <memory>
#include <string>
#include <mutex>

#include "coordinator/param_snapshot.h"
#include "coordinator/server_host.h"
#include "engine/base/thread_pool.h"

namespace lanlm::coordinator {

class ServeServer {
 public:
  static StatusOr<std::unique_ptr<ServeServer>> Start(const std::string& checkpoint, const std::string& listen,
                                                      int threads, bool handle_signals, ExtraServices extra,
                                                      const HostSecurity& security = {});
  ~ServeServer();
  int port() const { return host_.port(); }
  const StatusService::Provider& status_provider() const { return host_.status_provider(); }
  // Blocks until a signal or Stop(), then shuts the server down. Returns the stop reason.
  std::string Wait();
  void Stop(const std::string& reason);  // thread-safe

 private:
  ServeServer() = default;
  std::unique_ptr<engine::ThreadPool> pool_;
  std::shared_ptr<const ParamSnapshot> snapshot_;
  ServerHost host_;
  std::promise<std::string> stop_;
  std::future<std::string> stopped_;
  std::once_flag stop_once_;
  bool waited_ = false;
};

}  // namespace lanlm::coordinator
