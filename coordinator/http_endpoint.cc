// Routing of the coordinator's HTTP endpoint; see http_endpoint.h.
#include "coordinator/http_endpoint.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <iostream>

namespace lanlm::coordinator {
namespace {

ops::HttpResponse Text(int status, std::string body) {
  ops::HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

ops::HttpResponse Json(std::string body) {
  ops::HttpResponse response;
  response.content_type = "application/json";
  response.body = std::move(body);
  return response;
}

}  // namespace

ops::HttpResponse HandleCoordinatorHttp(const HttpSources& sources, const ops::HttpRequest& request) {
  const std::string& path = request.path;
  // Liveness: the process and its HTTP thread answer. Never depends on the run's state, so a
  // prober does not restart a coordinator that is merely waiting for workers.
  if (path == "/healthz") return Text(200, "ok\n");
  v1::GetStatusReply status;
  sources.status(&status);
  if (path == "/readyz") {
    // Ready while it serves its purpose: training (accepting workers) or serving a checkpoint.
    const bool ready = status.mode() == "training" || status.mode() == "serving";
    return Text(ready ? 200 : 503, (ready ? "ready: " : "not ready: ") + status.mode() + "\n");
  }
  if (path == "/metrics") {
    ops::HttpResponse response = Text(200, RenderMetrics(status, sources.metrics, sources.generate));
    response.content_type = ops::MetricsText::kContentType;
    return response;
  }
  if (path == "/api/status") return Json(RenderStatusJson(status, sources.metrics, sources.generate));
  if (path == "/api/history") {
    const std::string after = ops::QueryParam(request.query, "after");
    const std::string max = ops::QueryParam(request.query, "max");
    const int64_t after_step = after.empty() ? -1 : std::strtoll(after.c_str(), nullptr, 10);
    long long max_points = max.empty() ? 5000 : std::strtoll(max.c_str(), nullptr, 10);
    if (max_points < 1 || max_points > 100000) {
      return Text(400, "max=" + max + " is not in [1, 100000]\n");
    }
    return Json(RenderHistoryJson(sources.metrics, after_step, static_cast<size_t>(max_points)));
  }
  if (const DashboardAsset* asset = FindDashboardAsset(path == "/" ? "/index.html" : path)) {
    ops::HttpResponse response;
    response.content_type = asset->content_type;
    response.body.assign(asset->body, asset->size);
    response.cache_control = "max-age=300";
    return response;
  }
  return Text(404, "no such page: " + path +
                       " (try /, /metrics, /healthz, /readyz, /api/status, /api/history?after=STEP)\n");
}

void OpsFlags::Register(FlagSet& flags) {
  flags.String("http-listen", &http_listen,
               "serve /metrics, /healthz, /readyz and the dashboard at / on host:port (e.g. 0.0.0.0:9090); empty = off");
  log.Register(flags);
}

Status OpsFlags::Apply() const {
  if (!http_listen.empty()) LANLM_RETURN_IF_ERROR(ops::ParseListenAddress("--http-listen", http_listen).status());
  return ops::ConfigureLogging("coordinator", "%Y-%m-%d %H:%M:%S.%e %^%l%$ coordinator: %v", log);
}

StatusOr<std::unique_ptr<ops::HttpServer>> OpsFlags::Serve(HttpSources sources) const {
  if (http_listen.empty()) return std::unique_ptr<ops::HttpServer>();
  auto http = StartCoordinatorHttp(http_listen, std::move(sources));
  if (!http.ok()) {
    std::cerr << "lanlm-coordinator: " << http.status().ToString() << "\n";
  } else {
    spdlog::info("HTTP endpoint (metrics, dashboard) on port {}", (*http)->port());
  }
  return http;
}

StatusOr<std::unique_ptr<ops::HttpServer>> StartCoordinatorHttp(const std::string& listen, HttpSources sources) {
  return ops::HttpServer::Start("--http-listen", listen,
                                [sources = std::move(sources)](const ops::HttpRequest& request) {
                                  return HandleCoordinatorHttp(sources, request);
                                });
}

}  // namespace lanlm::coordinator
