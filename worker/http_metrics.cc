// The worker's /metrics; see http_metrics.h.
#include "worker/http_metrics.h"

#include "ops/prometheus.h"

namespace lanlm::worker {

std::string RenderWorkerMetrics(const WorkerStats& stats, const std::string& name, int threads) {
  ops::MetricsText m;
  m.Family("lanlm_worker_info", "gauge", "Constant 1, labelled with the worker's name.");
  m.Sample(1.0, {{"name", name}});
  m.Gauge("lanlm_worker_threads", "Threads computing gradients.", threads);
  m.Counter("lanlm_worker_joins_total", "Successful Joins (sessions with a coordinator).",
            static_cast<double>(stats.sessions));
  m.Counter("lanlm_worker_leases_total", "Gradients computed and committed.", static_cast<double>(stats.leases));
  m.Counter("lanlm_worker_commits_accepted_total", "Commits the coordinator applied.",
            static_cast<double>(stats.accepted));
  m.Counter("lanlm_worker_commits_rejected_total", "Commits the coordinator refused (late, duplicate, ...).",
            static_cast<double>(stats.rejected));
  m.Counter("lanlm_worker_parameters_received_bytes_total", "Parameter bytes received.",
            static_cast<double>(stats.param_bytes));
  m.Counter("lanlm_worker_gradient_sent_bytes_total", "Gradient bytes sent.", static_cast<double>(stats.gradient_bytes));
  m.Counter("lanlm_worker_parameters_relayed_in_bytes_total",
            "Of the parameter bytes received, those a peer relayed (--relay-listen on the peer).",
            static_cast<double>(stats.relayed_param_bytes));
  m.Counter("lanlm_worker_parameters_relayed_out_bytes_total", "Parameter bytes this worker relayed to peers.",
            static_cast<double>(stats.relay_served_bytes));
  m.Counter("lanlm_worker_relay_fallbacks_total",
            "Parameter versions a peer failed to deliver (the rest came from the coordinator).",
            static_cast<double>(stats.relay_fallbacks));
  return m.text();
}

StatusOr<std::unique_ptr<ops::HttpServer>> StartWorkerHttp(const std::string& listen,
                                                           std::function<WorkerStats()> stats,
                                                           const std::string& name, int threads) {
  return ops::HttpServer::Start(
      "--http-listen", listen, [stats = std::move(stats), name, threads](const ops::HttpRequest& request) {
        ops::HttpResponse response;
        if (request.path == "/healthz") {
          response.body = "ok\n";
        } else if (request.path == "/readyz") {
          const bool joined = stats().sessions > 0;
          response.status = joined ? 200 : 503;
          response.body = joined ? "ready: joined a coordinator\n" : "not ready: never joined a coordinator\n";
        } else if (request.path == "/metrics") {
          response.content_type = ops::MetricsText::kContentType;
          response.body = RenderWorkerMetrics(stats(), name, threads);
        } else {
          response.status = 404;
          response.body = "no such page: " + request.path + " (try /metrics, /healthz, /readyz)\n";
        }
        return response;
      });
}

}  // namespace lanlm::worker
