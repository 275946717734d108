// GenerateMetrics; see generate_metrics.h.
#include "coordinator/generate_metrics.h"

namespace lanlm::coordinator {
namespace {

// Buckets (seconds): first tokens include a prefill of up to a context of prompt, so they
// reach further than the per-token steps, which are milliseconds on small models.
const std::vector<double> kFirstTokenBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
const std::vector<double> kTokenBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

// Codes listed even at zero, so a rate() over them exists before the first such error.
const char* const kListedCodes[] = {"OK", "CANCELLED", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION",
                                    "RESOURCE_EXHAUSTED", "UNAVAILABLE"};

}  // namespace

GenerateMetrics::GenerateMetrics() {
  totals_.time_to_first_token = ops::Histogram(kFirstTokenBounds);
  totals_.token_latency = ops::Histogram(kTokenBounds);
}

void GenerateMetrics::SessionOpened() {
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.sessions_opened;
}

void GenerateMetrics::GenerationStarted() {
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.generations;
}

void GenerateMetrics::StreamFinished(StatusCode code) {
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.streams_finished[StatusCodeName(code)];
}

void GenerateMetrics::TokenEmitted(bool first, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.tokens;
  (first ? totals_.time_to_first_token : totals_.token_latency).Observe(seconds);
}

GenerateTotals GenerateMetrics::Totals() const {
  std::lock_guard<std::mutex> lock(mu_);
  return totals_;
}

void RenderGenerateMetrics(ops::MetricsText& m, const GenerateTotals& t) {
  m.Counter("lanlm_generate_sessions_opened_total", "Generate sessions created by start requests.",
            static_cast<double>(t.sessions_opened));
  m.Counter("lanlm_generate_generations_total", "Generations started (start and continue_session requests).",
            static_cast<double>(t.generations));
  m.Counter("lanlm_generate_tokens_total", "Tokens generated.", static_cast<double>(t.tokens));
  m.Family("lanlm_generate_time_to_first_token_seconds", "histogram",
           "From a request's arrival to its first generated token (tokenize, prefill, queueing).");
  m.HistogramSample(t.time_to_first_token);
  m.Family("lanlm_generate_token_latency_seconds", "histogram",
           "Between consecutive tokens of one generation (a batched decoding step plus queueing).");
  m.HistogramSample(t.token_latency);
  m.Family("lanlm_generate_streams_finished_total", "counter",
           "Generate streams ended, by gRPC status code (errors: code != OK).");
  for (const char* code : kListedCodes) {
    auto it = t.streams_finished.find(code);
    m.Sample(it == t.streams_finished.end() ? 0.0 : static_cast<double>(it->second), {{"code", code}});
  }
  for (const auto& [code, count] : t.streams_finished) {
    bool listed = false;
    for (const char* c : kListedCodes) listed = listed || code == c;
    if (!listed) m.Sample(static_cast<double>(count), {{"code", code}});
  }
}

}  // namespace lanlm::coordinator
