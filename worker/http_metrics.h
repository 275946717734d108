// The worker's HTTP endpoint (lanlm-worker --http-listen): GET /metrics with the worker's
// own counters (Prometheus text), /healthz (the process answers) and /readyz (it has joined
// a coordinator at least once). Runs on its own thread (ops::HttpServer); reads
// Worker::stats() under the worker's short lock.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "ops/http_server.h"
#include "worker/worker.h"

namespace lanlm::worker {

std::string RenderWorkerMetrics(const WorkerStats& stats, const std::string& name, int threads);

StatusOr<std::unique_ptr<ops::HttpServer>> StartWorkerHttp(const std::string& listen,
                                                           std::function<WorkerStats()> stats,
                                                           const std::string& name, int threads);

}  // namespace lanlm::worker
