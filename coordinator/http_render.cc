// Bodies of /metrics, /api/status and /api/history; see http_endpoint.h. Metric names follow
// the Prometheus conventions: base units in the name (_seconds, _bytes), counters end in
// _total, one family per quantity with labels for its parts (phase, code, worker).
#include <chrono>
#include <cinttypes>
#include <cstdio>

#include "coordinator/http_endpoint.h"
#include "ops/logging.h"

namespace lanlm::coordinator {
namespace {

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void RenderRun(ops::MetricsText& m, const RunMetrics& metrics) {
  const MetricTotals t = metrics.Totals();
  m.Counter("lanlm_training_tokens_total", "Tokens trained on since step 0 (restored from the history on --resume).",
            static_cast<double>(t.tokens));
  m.Counter("lanlm_training_steps_total", "Optimizer steps finished by this process.", static_cast<double>(t.steps));
  m.Counter("lanlm_step_duration_seconds_total", "Wall time of the finished steps.", t.step_s);
  m.Family("lanlm_step_phase_seconds_total", "counter",
           "Step time by phase, per worker: compute (forward+backward), transfer (lease round trip minus compute), "
           "waiting (idle for a lease), tree_sum (final gradient sum), optimizer (clip+AdamW).");
  const std::pair<const char*, double> phases[] = {{"compute", t.compute_s}, {"transfer", t.transfer_s},
                                                   {"waiting", t.waiting_s}, {"tree_sum", t.tree_s},
                                                   {"optimizer", t.optimizer_s}};
  for (const auto& [phase, seconds] : phases) m.Sample(seconds, {{"phase", phase}});
  m.Family("lanlm_last_step_phase_seconds", "gauge", "The newest step's time by phase (see lanlm_step_phase_seconds_total).");
  const StepRecord& l = t.last;
  const std::pair<const char*, double> last[] = {{"compute", l.compute_s}, {"transfer", l.transfer_s},
                                                 {"waiting", l.waiting_s}, {"tree_sum", l.tree_s},
                                                 {"optimizer", l.optimizer_s}};
  for (const auto& [phase, seconds] : last) m.Sample(seconds, {{"phase", phase}});
  m.Gauge("lanlm_last_step_duration_seconds", "Wall time of the newest step.", l.step_s);
  m.Counter("lanlm_gradient_received_bytes_total", "Gradient bytes received from workers.",
            static_cast<double>(t.bytes_in));
  m.Counter("lanlm_parameters_sent_bytes_total", "Parameter bytes sent to workers.", static_cast<double>(t.bytes_out));
  m.Counter("lanlm_leases_issued_total", "Shard leases issued.", static_cast<double>(t.leases_issued));
  m.Counter("lanlm_leases_reissued_total", "Leases whose shards went back to the queue (deadline passed, worker left, "
            "bad gradient).", static_cast<double>(t.leases_reissued));
  m.Counter("lanlm_leases_committed_total", "Leases whose gradient was applied.", static_cast<double>(t.leases_committed));
  m.Family("lanlm_lease_commits_rejected_total", "counter", "Commits refused, by gRPC status code.");
  for (const char* code : {"ABORTED", "NOT_FOUND", "INVALID_ARGUMENT", "DATA_LOSS"}) {
    auto it = t.commits_rejected.find(code);
    m.Sample(it == t.commits_rejected.end() ? 0.0 : static_cast<double>(it->second), {{"code", code}});
  }
  for (const auto& [code, count] : t.commits_rejected) {
    if (code != "ABORTED" && code != "NOT_FOUND" && code != "INVALID_ARGUMENT" && code != "DATA_LOSS") {
      m.Sample(static_cast<double>(count), {{"code", code}});
    }
  }
  m.Counter("lanlm_workers_joined_total", "Worker streams opened.", static_cast<double>(t.workers_joined));
  m.Counter("lanlm_workers_left_total", "Worker streams that ended.", static_cast<double>(t.workers_left));
  m.Counter("lanlm_validation_runs_total", "Validation-loss evaluations by this process (--eval-every).",
            static_cast<double>(t.validations));
  m.Counter("lanlm_validation_seconds_total", "Wall time of those evaluations (the loop runs them while the "
            "workers compute the next step).", t.validation_s);
  m.Counter("lanlm_checkpoints_written_total", "Checkpoints written by this process.", static_cast<double>(t.checkpoints));
  m.Counter("lanlm_checkpoint_failures_total", "Checkpoints that could not be written.",
            static_cast<double>(t.checkpoint_failures));
  const std::vector<CheckpointRecord> checkpoints = metrics.Checkpoints();
  if (!checkpoints.empty()) {
    m.Gauge("lanlm_checkpoint_last_step", "Step of the newest checkpoint.", static_cast<double>(checkpoints.back().step));
    m.Gauge("lanlm_checkpoint_last_timestamp_seconds", "Unix time the newest checkpoint was written.",
            static_cast<double>(checkpoints.back().unix_ms) / 1e3);
    m.Gauge("lanlm_checkpoint_age_seconds", "Seconds since the newest checkpoint was written.",
            static_cast<double>(NowUnixMs() - checkpoints.back().unix_ms) / 1e3);
  }
  const std::vector<WorkerRecord> workers = metrics.Workers();
  const std::pair<const char*, const char*> families[] = {
      {"lanlm_worker_connected", "1 while the worker's stream is open."},
      {"lanlm_worker_leases_committed_total", "Leases the worker committed and the coordinator applied."},
      {"lanlm_worker_tokens_total", "Tokens in the worker's applied leases."},
      {"lanlm_worker_compute_seconds_total", "The worker's forward+backward time of applied leases."},
      {"lanlm_worker_tokens_per_second", "The worker's throughput over its newest lease's round trip."},
      {"lanlm_worker_params_from_peer", "1 when the worker's newest parameter version came from a peer (the relay)."},
      {"lanlm_worker_relay_fallbacks_total",
       "Versions a peer failed to deliver to the worker, whose rest the coordinator sent."}};
  for (int f = 0; f < 7; ++f) {
    const std::string name = families[f].first;
    m.Family(name, name.ends_with("_total") ? "counter" : "gauge", families[f].second);
    for (const WorkerRecord& w : workers) {
      const double values[] = {w.connected ? 1.0 : 0.0, static_cast<double>(w.leases), static_cast<double>(w.tokens),
                               w.compute_s, w.tokens_per_second,
                               w.params_from.empty() || w.params_from == "coordinator" ? 0.0 : 1.0,
                               static_cast<double>(w.relay_fallbacks)};
      m.Sample(values[f], {{"worker", w.id}, {"name", w.name}});
    }
  }
}

void AppendField(std::string& out, const char* key, const std::string& value) {
  out += "\"";
  out += key;
  out += "\":\"";
  ops::AppendJsonEscaped(out, value);
  out += "\"";
}

// A JSON number; null for NaN and infinities, which JSON cannot spell.
std::string Number(double value) {
  std::string text = ops::FormatValue(value);
  return text == "NaN" || text == "+Inf" || text == "-Inf" ? "null" : text;
}

// ,"generate":{...}: the Generate service's counts and mean latencies (null before any).
void AppendGenerate(std::string& out, const GenerateTotals& t) {
  const auto mean = [](const ops::Histogram& h) {
    return h.count() > 0 ? Number(h.sum / static_cast<double>(h.count())) : std::string("null");
  };
  int64_t errors = 0;
  for (const auto& [code, count] : t.streams_finished) errors += code == "OK" || code == "CANCELLED" ? 0 : count;
  out += ",\"generate\":{\"sessions_opened\":" + std::to_string(t.sessions_opened) +
         ",\"generations\":" + std::to_string(t.generations) + ",\"tokens\":" + std::to_string(t.tokens) +
         ",\"time_to_first_token_mean_s\":" + mean(t.time_to_first_token) +
         ",\"token_latency_mean_s\":" + mean(t.token_latency) + ",\"errors\":" + std::to_string(errors) + "}";
}

}  // namespace

std::string RenderMetrics(const v1::GetStatusReply& status, const RunMetrics* metrics, const GenerateMetrics* generate) {
  ops::MetricsText m;
  m.Family("lanlm_mode", "gauge", "1 for the coordinator's current mode (training, finished, serving).");
  for (const char* mode : {"training", "finished", "serving"}) m.Sample(status.mode() == mode ? 1.0 : 0.0, {{"mode", mode}});
  m.Gauge("lanlm_training_step", "Optimizer steps applied (the parameter version).", static_cast<double>(status.step()));
  m.Gauge("lanlm_training_target_steps", "Step count the run ends at.", static_cast<double>(status.total_steps()));
  m.Gauge("lanlm_training_loss", "Mean training loss of the newest step, nats.", status.loss());
  if (status.validation_loss() > 0.0f) {
    m.Gauge("lanlm_validation_loss", "Newest validation loss, nats.", status.validation_loss());
  }
  m.Gauge("lanlm_training_tokens_per_second", "Training throughput over the newest step.", status.tokens_per_second());
  m.Gauge("lanlm_workers_connected", "Workers connected now.", status.workers());
  m.Gauge("lanlm_generate_sessions", "Live Generate sessions.", status.sessions());
  m.Gauge("lanlm_generate_kv_cache_bytes", "Memory held by the sessions' KV caches.",
          static_cast<double>(status.kv_cache_bytes()));
  m.Family("lanlm_model_info", "gauge", "Constant 1, labelled with the model config and parameter fingerprint.");
  m.Sample(1.0, {{"config", status.model_config()}, {"fingerprint", status.fingerprint()}});
  if (metrics != nullptr) RenderRun(m, *metrics);
  if (generate != nullptr) RenderGenerateMetrics(m, generate->Totals());
  return m.text();
}

std::string RenderStatusJson(const v1::GetStatusReply& s, const RunMetrics* metrics, const GenerateMetrics* generate) {
  std::string out = "{";
  AppendField(out, "mode", s.mode());
  out += ",\"step\":" + std::to_string(s.step()) + ",\"total_steps\":" + std::to_string(s.total_steps());
  out += ",\"loss\":" + Number(s.loss()) + ",\"validation_loss\":" + Number(s.validation_loss());
  out += ",\"tokens_per_second\":" + Number(s.tokens_per_second()) + ",\"workers_connected\":" +
         std::to_string(s.workers());
  out += ",\"sessions\":" + std::to_string(s.sessions()) + ",\"kv_cache_bytes\":" + std::to_string(s.kv_cache_bytes());
  if (generate != nullptr) AppendGenerate(out, generate->Totals());
  out += ",";
  AppendField(out, "model_config", s.model_config());
  out += ",";
  AppendField(out, "fingerprint", s.fingerprint());
  out += ",\"now_unix_ms\":" + std::to_string(NowUnixMs());
  out += ",\"workers\":[";
  if (metrics != nullptr) {
    bool first = true;
    for (const WorkerRecord& w : metrics->Workers()) {
      out += first ? "{" : ",{";
      first = false;
      AppendField(out, "id", w.id);
      out += ",";
      AppendField(out, "name", w.name);
      out += std::string(",\"connected\":") + (w.connected ? "true" : "false");
      out += ",\"leases\":" + std::to_string(w.leases) + ",\"tokens\":" + std::to_string(w.tokens);
      out += ",\"compute_s\":" + Number(w.compute_s) + ",\"tokens_per_second\":" + Number(w.tokens_per_second);
      out += ",";
      AppendField(out, "relay_address", w.relay_address);
      out += ",";
      AppendField(out, "params_from", w.params_from);
      out += ",\"relay_fallbacks\":" + std::to_string(w.relay_fallbacks);
      out += ",\"joined_unix_ms\":" + std::to_string(w.joined_unix_ms) +
             ",\"last_seen_unix_ms\":" + std::to_string(w.last_seen_unix_ms) + "}";
    }
  }
  out += "],\"checkpoints\":[";
  if (metrics != nullptr) {
    const std::vector<CheckpointRecord> checkpoints = metrics->Checkpoints();
    const size_t from = checkpoints.size() > 20 ? checkpoints.size() - 20 : 0;  // the newest 20
    for (size_t i = from; i < checkpoints.size(); ++i) {
      out += i == from ? "{" : ",{";
      out += "\"step\":" + std::to_string(checkpoints[i].step) + ",";
      AppendField(out, "path", checkpoints[i].path);
      out += ",\"unix_ms\":" + std::to_string(checkpoints[i].unix_ms) + "}";
    }
    out += "],";
    AppendField(out, "history_file", metrics->history_path());
  } else {
    out += "]";
  }
  out += "}";
  return out;
}

std::string RenderHistoryJson(const RunMetrics* metrics, int64_t after, size_t max_points) {
  std::string out = "{\"points\":[";
  if (metrics != nullptr) {
    bool first = true;
    for (const StepRecord& r : metrics->History(after, max_points)) {
      if (!first) out += ",";
      first = false;
      out += StepRecordJson(r);
    }
  }
  out += "]}";
  return out;
}

}  // namespace lanlm::coordinator
