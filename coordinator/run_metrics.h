// RunMetrics: what an operator watches while a training run goes on, recorded by TrainingRun
// on its loop thread and read by the HTTP endpoint (/metrics, the dashboard) from any thread
// under one short lock. Counters are totals since the process started; the step history is
// also appended to <checkpoint dir>/history.jsonl, one JSON object per step, so the plots
// survive a --resume (lines after the resumed step are dropped: those steps are redone).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/cli/run_history.h"

namespace lanlm::coordinator {

using engine::ParseStepRecord;
using engine::StepRecord;  // one history row (engine/cli/run_history.h)
using engine::StepRecordJson;

// What the loop knows when a step ends; RunMetrics adds its per-step lease accounting.
struct StepEnd {
  int64_t step = 0;
  int64_t step_tokens = 0;
  float loss = 0.0f;
  double step_s = 0.0, tree_s = 0.0, optimizer_s = 0.0;
  int64_t bytes_in = 0, bytes_out = 0, reissued = 0;
  int workers = 0;
  float validation_loss = 0.0f;  // nats; 0 = not evaluated at this step
  double validation_s = 0.0;     // the evaluation's wall time
};

struct WorkerRecord {
  std::string id, name;
  bool connected = false;
  int64_t leases = 0;                 // leases committed
  int64_t tokens = 0;                 // tokens of those leases
  double compute_s = 0.0;             // their forward + backward time
  double tokens_per_second = 0.0;     // of the last committed lease, over its round trip
  int64_t joined_unix_ms = 0, last_seen_unix_ms = 0;
  // The parameter relay (protocol 7): where the worker relays ("" = it does not), where its
  // newest parameter version came from ("" = none yet, "coordinator", or a peer's worker id),
  // and the versions a peer failed to deliver (the coordinator sent the rest).
  std::string relay_address, params_from;
  int64_t relay_fallbacks = 0;
};

struct CheckpointRecord {
  int64_t step = 0;
  std::string path;
  int64_t unix_ms = 0;
};

struct MetricTotals {
  int64_t steps = 0;                  // steps finished by this process
  int64_t tokens = 0;                 // tokens since step 0 (history included)
  int64_t bytes_in = 0, bytes_out = 0;
  int64_t leases_issued = 0, leases_reissued = 0, leases_committed = 0;
  std::map<std::string, int64_t> commits_rejected;  // gRPC code name -> count
  double step_s = 0.0, compute_s = 0.0, transfer_s = 0.0, waiting_s = 0.0, tree_s = 0.0, optimizer_s = 0.0;
  int64_t workers_joined = 0, workers_left = 0;
  int64_t checkpoints = 0, checkpoint_failures = 0;
  int64_t validations = 0;            // evaluations by this process
  double validation_s = 0.0;          // their wall time
  float validation_loss = 0.0f;       // the newest evaluated (history included); 0 = none yet
  StepRecord last;                    // the newest step (step 0 when none yet)
};

class RunMetrics {
 public:
  // ---- loop thread ----
  // Loads <dir>/history.jsonl, keeps the steps <= resumed_step and rewrites the file; later
  // steps are appended to it. An empty dir keeps the history in memory only. Errors (an
  // unwritable directory) are returned; the run goes on without the file.
  Status OpenHistory(const std::string& checkpoint_dir, int64_t resumed_step);
  void WorkerJoined(const std::string& id, const std::string& name, const std::string& relay_address = "");
  // A lease that needs a parameter version: from a peer (source = its worker id) or "coordinator".
  void ParamsFrom(const std::string& worker_id, const std::string& source);
  void RelayFallback(const std::string& worker_id);
  void WorkerLeft(const std::string& id);
  void LeaseIssued(int64_t lease_id, const std::string& worker_id);
  void LeaseCommitted(int64_t lease_id, const std::string& worker_id, int64_t tokens, double compute_ms);
  void CommitRejected(StatusCode code);
  void StepFinished(const StepEnd& end);
  void CheckpointWritten(int64_t step, const std::string& path, bool ok);

  // ---- any thread ----
  MetricTotals Totals() const;
  std::vector<WorkerRecord> Workers() const;
  std::vector<CheckpointRecord> Checkpoints() const;
  // Steps with step > after, oldest first, at most max_points (evenly thinned when more).
  std::vector<StepRecord> History(int64_t after, size_t max_points) const;
  std::string history_path() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct PendingLease {
    std::string worker_id;
    Clock::time_point issued;
  };

  mutable std::mutex mu_;
  std::string history_path_;
  std::vector<StepRecord> history_;
  MetricTotals totals_;
  std::map<std::string, WorkerRecord> workers_;     // by worker id
  std::vector<CheckpointRecord> checkpoints_;
  std::map<int64_t, PendingLease> pending_;         // lease_id -> issue time (loop thread only)
  std::map<std::string, bool> step_workers_;        // workers that committed in this step
  double step_compute_s_ = 0.0, step_transfer_s_ = 0.0;
};

}  // namespace lanlm::coordinator
