// GenerateMetrics: what /metrics reports about the Generate service, recorded by the stream
// reactors (sessions opened, streams ended by gRPC code) and the decode threads (each token's
// latency) under one short lock, read by the HTTP endpoint from any thread. Created by main
// and shared with GenerateService and the endpoint; the service makes its own when none is
// given (tests). Latencies are seconds, Prometheus histograms (ops::Histogram).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "engine/base/status.h"
#include "ops/prometheus.h"

namespace lanlm::coordinator {

struct GenerateTotals {
  int64_t sessions_opened = 0;  // new sessions (start requests that got one)
  int64_t generations = 0;      // generations started (start and continue_session)
  int64_t tokens = 0;           // tokens generated
  // received -> first token (tokenize, prefill, first sample, queueing for a decode thread).
  ops::Histogram time_to_first_token;
  // Between consecutive tokens of one generation (one batched decoding step plus waiting).
  ops::Histogram token_latency;
  std::map<std::string, int64_t> streams_finished;  // gRPC code name (OK, CANCELLED, ...) -> streams
};

class GenerateMetrics {
 public:
  GenerateMetrics();

  // ---- reactor threads ----
  void SessionOpened();
  void GenerationStarted();
  // A stream's one Finish; code is the gRPC status code (numerically StatusCode).
  void StreamFinished(StatusCode code);
  // ---- decode threads ----
  // A token of a generation: its first (seconds since the request arrived) or a later one
  // (seconds since the previous token).
  void TokenEmitted(bool first, double seconds);

  // ---- any thread ----
  GenerateTotals Totals() const;

 private:
  mutable std::mutex mu_;
  GenerateTotals totals_;
};

// Writes the lanlm_generate_* families (counters and histograms) of `totals`.
void RenderGenerateMetrics(ops::MetricsText& m, const GenerateTotals& totals);

}  // namespace lanlm::coordinator
