// The coordinator's HTTP endpoint (--http-listen): GET /metrics (Prometheus text), /healthz,
// /readyz, the live dashboard at / with its JSON feeds /api/status and /api/history. Built on
// the same snapshot ClusterStatus answers from (StatusService::Provider) plus RunMetrics, so
// it reads the training loop's state only under short locks and never posts work to it; the
// server runs on its own thread (ops::HttpServer). See docs/OPERATIONS.md.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "coordinator/generate_metrics.h"
#include "coordinator/run_metrics.h"
#include "coordinator/status_service.h"
#include "engine/cli/flags.h"
#include "ops/logging.h"
#include "ops/http_server.h"
#include "ops/prometheus.h"

namespace lanlm::coordinator {

struct HttpSources {
  StatusService::Provider status;       // required: fills the ClusterStatus snapshot
  const RunMetrics* metrics = nullptr;  // the training run's; null when only serving
  const GenerateMetrics* generate = nullptr;  // the Generate service's; null when none
};

// lanlm-coordinator's operations flags: --http-listen, --log-format, --log-level.
struct OpsFlags {
  std::string http_listen;  // empty = no HTTP endpoint
  ops::LogOptions log;

  void Register(FlagSet& flags);
  // Checks the flags and installs the logger (INVALID_ARGUMENT naming a bad value).
  Status Apply() const;
  // Starts the endpoint when --http-listen is set (a null server when not); logs the port,
  // or prints the error to stderr.
  StatusOr<std::unique_ptr<ops::HttpServer>> Serve(HttpSources sources) const;
};

// Starts serving on listen ("host:port"); errors name --http-listen and the value.
StatusOr<std::unique_ptr<ops::HttpServer>> StartCoordinatorHttp(const std::string& listen, HttpSources sources);

// The routing, exposed for tests.
ops::HttpResponse HandleCoordinatorHttp(const HttpSources& sources, const ops::HttpRequest& request);

// Bodies of /metrics, /api/status and /api/history?after=N.
std::string RenderMetrics(const v1::GetStatusReply& status, const RunMetrics* metrics,
                          const GenerateMetrics* generate = nullptr);
std::string RenderStatusJson(const v1::GetStatusReply& status, const RunMetrics* metrics,
                             const GenerateMetrics* generate = nullptr);
std::string RenderHistoryJson(const RunMetrics* metrics, int64_t after, size_t max_points);

// A dashboard file compiled into the binary (coordinator/dashboard/ and, when the setup
// script fetched it, uPlot from npm); null when there is none at that path.
struct DashboardAsset {
  const char* content_type;
  const char* body;
  size_t size;
};
const DashboardAsset* FindDashboardAsset(const std::string& path);

}  // namespace lanlm::coordinator
